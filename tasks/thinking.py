"""The think format: parse, strip, validate and render thoughts, for both recipes.

Think-Anywhere responses look like::

    <think>plan …</think>
    ```python
    total = sum(<thinkanywhere>only positive values count</thinkanywhere>x for x in xs if x > 0)
    ```

To execute a response: take the text after the first ``</think>``, remove every
``<thinkanywhere>…</thinkanywhere>`` block, run the last ```python block (an unclosed final block,
as left by a stop string or a length cap, counts).

The reward's format terms follow the reference implementation (``format_credit``, below); the
stricter ``has_inline_thought_in_statement`` decides what enters the cold-start set.

Thinking mid-training text interleaves thoughts with the original text,
``x1 <think>t1</think> x2 …``; removing the thoughts must give back the original chunk exactly.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Any

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
INLINE_OPEN, INLINE_CLOSE = "<thinkanywhere>", "</thinkanywhere>"
THINK_TAGS = (THINK_OPEN, THINK_CLOSE, INLINE_OPEN, INLINE_CLOSE)

INLINE_BLOCK = re.compile(re.escape(INLINE_OPEN) + r".*?" + re.escape(INLINE_CLOSE), re.DOTALL)
_THINK_BLOCK = re.compile(re.escape(THINK_OPEN) + r".*?" + re.escape(THINK_CLOSE), re.DOTALL)
FENCE_OPEN = re.compile(r"```(?:python|py|python3)[ \t]*\n", re.IGNORECASE)
_ANY_TAG = re.compile("|".join(re.escape(t) for t in THINK_TAGS))


@dataclass(frozen=True)
class InlineThought:
    """One inline block inside the code: its text and where it sits."""

    text: str
    line: int  # 0-based line of the code (with the thoughts still in) where the block opens
    code_before: str  # the code on that line before the block, indentation removed
    code_after: str  # the code on that line after the block closes (first line only)

    @property
    def inside_statement(self) -> bool:
        """The block interrupts a statement: code precedes it on its line, outside a comment."""
        before = self.code_before
        return bool(before.strip()) and "#" not in before


@dataclass
class ParsedResponse:
    upfront_thought: str | None
    code_with_thoughts: str | None  # the last ```python block after </think>, thoughts kept
    code: str | None  # the same with every inline block removed: what gets executed
    inline_thoughts: list[InlineThought] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # format problems found (never raised)


def strip_inline_thoughts(code: str) -> str:
    """Remove every ``<thinkanywhere>…</thinkanywhere>`` block (DOTALL, non-greedy)."""
    return INLINE_BLOCK.sub("", code)


def strip_thoughts(text: str) -> str:
    """Remove every ``<think>…</think>`` block from interleaved mid-training text."""
    return _THINK_BLOCK.sub("", text)


def text_after_upfront_thought(text: str) -> str:
    """What follows the first ``</think>``; the whole text when there is none."""
    cut = text.find(THINK_CLOSE)
    return text if cut < 0 else text[cut + len(THINK_CLOSE) :]


def last_python_block(text: str) -> str | None:
    """The body of the last ```python block; a final block with no closing fence counts."""
    opens = list(FENCE_OPEN.finditer(text))
    if not opens:
        return None
    start = opens[-1].end()
    end = text.find("```", start)
    return text[start:] if end < 0 else text[start:end]


def extract_code(text: str) -> str | None:
    """The code to execute for a response, exactly as the architecture defines it."""
    block = last_python_block(strip_inline_thoughts(text_after_upfront_thought(text)))
    return block


def upfront_thought(text: str) -> str | None:
    """The thought of the ``<think>…</think>`` block that opens the text at its first character (the
    reference's ``^<think>``: nothing, not even whitespace, before it); None when there is none."""
    if not text.startswith(THINK_OPEN):
        return None
    end = text.find(THINK_CLOSE)
    if end < 0:
        return None
    inner = text[len(THINK_OPEN) : end]
    if THINK_OPEN in inner:
        return None
    return inner


def find_inline_thoughts(code_with_thoughts: str) -> list[InlineThought]:
    """Every well-formed inline block, with the code around it on its line."""
    found = []
    for match in INLINE_BLOCK.finditer(code_with_thoughts):
        line_start = code_with_thoughts.rfind("\n", 0, match.start()) + 1
        line_end = code_with_thoughts.find("\n", match.end())
        line_end = len(code_with_thoughts) if line_end < 0 else line_end
        before = strip_inline_thoughts(code_with_thoughts[line_start : match.start()]).lstrip()
        after = code_with_thoughts[match.end() : line_end]
        inner = match.group(0)[len(INLINE_OPEN) : -len(INLINE_CLOSE)]
        found.append(
            InlineThought(
                text=inner,
                line=code_with_thoughts.count("\n", 0, match.start()),
                code_before=before,
                code_after=strip_inline_thoughts(after),
            )
        )
    return found


def format_problems(text: str) -> list[str]:
    """Malformed tags, described; an empty list for a well-formed response."""
    problems = []
    n_open, n_close = text.count(THINK_OPEN), text.count(THINK_CLOSE)
    if n_open != n_close:
        problems.append(f"unbalanced <think>: {n_open} open, {n_close} close")
    if n_open and not text.startswith(THINK_OPEN):  # at the first character, as upfront_thought reads it
        problems.append("<think> block does not open the response")
    if n_open > 1:
        problems.append(f"{n_open} <think> blocks; at most one upfront block is allowed")
    depth = 0
    for tag in _INLINE_TAG.findall(text):
        depth += 1 if tag == INLINE_OPEN else -1
        if depth < 0:
            problems.append("</thinkanywhere> without an opening tag")
            depth = 0
        elif depth > 1:
            problems.append("nested <thinkanywhere> blocks")
            depth = 1
    if depth:
        problems.append("<thinkanywhere> left open")
    body = text_after_upfront_thought(text)
    outside = _FENCE_BLOCK.sub("", body)
    if INLINE_OPEN in outside:
        problems.append("<thinkanywhere> outside the code block")
    return problems


_INLINE_TAG = re.compile(re.escape(INLINE_OPEN) + "|" + re.escape(INLINE_CLOSE))
_FENCE_BLOCK = re.compile(r"```(?:python|py|python3)?[ \t]*\n.*?(?:```|\Z)", re.DOTALL | re.IGNORECASE)


def parse_response(text: str) -> ParsedResponse:
    """Everything the reward, the evaluator and the statistics need from one response."""
    with_thoughts = last_python_block(text_after_upfront_thought(text))
    return ParsedResponse(
        upfront_thought=upfront_thought(text),
        code_with_thoughts=with_thoughts,
        code=None if with_thoughts is None else strip_inline_thoughts(with_thoughts),
        inline_thoughts=[] if with_thoughts is None else find_inline_thoughts(with_thoughts),
        problems=format_problems(text),
    )


def parses_as_python(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


def has_upfront_think(text: str) -> bool:
    """The response opens with a non-empty ``<think>…</think>`` block: the one definition of "opens with a
    thought" (the reward's upfront term adds that a closed python block follows; the evaluation's
    ``upfront_think_rate`` counts this)."""
    thought = upfront_thought(text)
    return thought is not None and bool(thought.strip())


def has_inline_thought_in_statement(text: str) -> bool:
    """A well-formed inline block interrupts a code statement, and the code runs without it.

    Well-formed means: no tag problems in the response, the block is inside the executed
    ```python block with code before it on its line (not in a comment), and the code with every
    block removed parses.
    """
    parsed = parse_response(text)
    if parsed.problems or parsed.code is None or not parses_as_python(parsed.code):
        return False
    return any(t.inside_statement and t.text.strip() for t in parsed.inline_thoughts)


# -- the reward's format terms, with the reference's semantics ------------------------------------
#
# Think-Anywhere's reference (``cal_format_reward`` in jiangxxxue/Think-Anywhere) scores format on
# the FIRST closed ```python block; a reply without one earns no format credit at all. Per line of
# that block, blocks whose thought starts with ``#`` are dropped, the line is cut at its first ``#``,
# and an inline block counts when code sits on both sides of it on that line. Where we differ, on
# purpose: the upfront thought must hold a non-space character (the reference's ``.+?`` accepts
# ``<think> </think>``, a free 0.02 that a policy learns to emit without thinking).

_FIRST_CLOSED_PYTHON = re.compile(r"```python\s*(.*?)\s*```", re.DOTALL)
_WHOLE_REPLY_INLINE = re.compile(r"^\s*<thinkanywhere>.*?</thinkanywhere>\s*$", re.DOTALL)
_COMMENT_THOUGHT = re.compile(r"<thinkanywhere>\s*#.*?</thinkanywhere>")
_INLINE_ON_LINE = re.compile(r"<thinkanywhere>.+?</thinkanywhere>")


@dataclass(frozen=True)
class FormatCredit:
    """Which format terms of the Think-Anywhere reward a reply earns."""

    upfront_think: bool  # opens (at character 0) with a non-empty <think>…</think>, and has a closed python block
    inline_think: bool  # an inline block with code before and after it on one line of the first closed python block


def first_closed_python_block(text: str) -> str | None:
    match = _FIRST_CLOSED_PYTHON.search(text)
    return None if match is None else match.group(1)


def inline_block_between_code(line: str) -> bool:
    """One code line: an inline block (not one wrapping a ``#`` comment) with code on both sides,
    the line read up to its first ``#``."""
    code_part = _COMMENT_THOUGHT.sub("", line).split("#", 1)[0]
    head, tail = code_part.lstrip(), code_part.rstrip()
    return any(not (head.startswith(block) or tail.endswith(block)) for block in _INLINE_ON_LINE.findall(code_part))


def format_credit(text: str) -> FormatCredit:
    """The reward's format terms for one reply (the reference's semantics, see above)."""
    text = _WHOLE_REPLY_INLINE.sub("", text)
    code = first_closed_python_block(text)
    if code is None:
        return FormatCredit(upfront_think=False, inline_think=False)
    return FormatCredit(
        upfront_think=has_upfront_think(text),
        inline_think=any(inline_block_between_code(line) for line in code.splitlines()),
    )


def insert_inline_thoughts(code: str, thoughts: dict[int, str]) -> str:
    """Insert ``<thinkanywhere>`` blocks at character offsets of ``code`` (offset -> thought)."""
    pieces, last = [], 0
    for offset in sorted(thoughts):
        if not 0 <= offset <= len(code):
            raise ValueError(f"insertion offset {offset} outside the code (length {len(code)})")
        pieces += [code[last:offset], INLINE_OPEN, thoughts[offset], INLINE_CLOSE]
        last = offset
    pieces.append(code[last:])
    return "".join(pieces)


def clean_thought(text: str, max_chars: int = 200) -> str:
    """Make annotator output safe to embed: no tags, fences or newlines; bounded length."""
    text = _ANY_TAG.sub(" ", text).replace("`", "'")
    text = " ".join(text.split())
    if len(text) > max_chars:
        text = text[:max_chars].rsplit(" ", 1)[0] or text[:max_chars]
    return text.strip()


def render_response(code: str, upfront: str | None = None) -> str:
    """A response in the Think-Anywhere format (``code`` may carry inline blocks)."""
    head = f"{THINK_OPEN}\n{upfront.strip()}\n{THINK_CLOSE}\n" if upfront else ""
    return f"{head}```python\n{code.rstrip()}\n```"


def render_interleaved(segments: list[str], thoughts: list[str]) -> str:
    """``x1 <think>t1</think> x2 …``: one thought after each segment but the last."""
    if len(thoughts) != len(segments) - 1:
        raise ValueError(f"{len(segments)} segments need {len(segments) - 1} thoughts, got {len(thoughts)}")
    out = [segments[0]]
    for thought, segment in zip(thoughts, segments[1:]):
        out += [f"{THINK_OPEN}{thought}{THINK_CLOSE}", segment]
    return "".join(out)


def completion_text(completion: Any) -> str:
    """TRL passes a string, or for conversational data a list of messages."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content", ""))
    raise TypeError(f"unexpected completion type {type(completion).__name__}")
