"""Annotator text made fit to be a thought in a cold-start target.

A small annotator (the demo's is the 135M policy itself) asked for "one or two sentences, no code"
often answers with a lead-in and then code: "Here's a Python solution: '''python def f(x): return".
Trained on such plans, the policy learns that ``<think>`` opens a code listing, closes it with the
wrong tag or never opens the ```python block at all (measured 2026-12-02: 43 of 64 plans held code;
after SFT 38 % of greedy HumanEval replies had a well-formed upfront thought). So a thought keeps
only its prose: it is cut at the first code marker, and trimmed to its last whole sentence when it
has one (an annotator cut at its token cap stops mid-sentence). A plan with no prose left is
replaced by the task's own first sentence, and the caller counts how often that happened.
"""

from __future__ import annotations

import re

# Where prose stops and code (or a lead-in to code) starts.
CODE_MARKER = re.compile(
    r"'''|\"\"\"|```|>>>|\bdef\s+\w+\s*\(|\bclass\s+\w+\s*[:(]|\blambda\b|==|!=|\w\[[^\]]*\]|\w+\([^)]*\)\s*(?:->|:)"
    r"|\bhere(?:'s| is) (?:a |the )?(?:python |simple |possible )?(?:solution|implementation|code|function)",
    re.IGNORECASE,
)
SENTENCE_END = re.compile(r"[.!?](?=\s|$)")
PLAN_MIN_WORDS = 4  # a plan says how; an inline thought may be as short as "check bounds"
THOUGHT_MIN_WORDS = 2


def prose_part(text: str, min_words: int = THOUGHT_MIN_WORDS) -> str:
    """``text`` up to its first code marker, ending at its last whole sentence when it has one;
    "" when fewer than ``min_words`` words of prose are left."""
    text = " ".join(text.split())
    marker = CODE_MARKER.search(text)
    if marker:
        text = text[: marker.start()]
    ends = list(SENTENCE_END.finditer(text))
    if ends and len(text[: ends[-1].end()].split()) >= min_words:
        text = text[: ends[-1].end()]
    text = text.strip().rstrip(":;,-").strip()
    return text if len(text.split()) >= min_words else ""


def task_sentence(task_text: str, max_chars: int = 200) -> str:
    """The first sentence of a task's description: its docstring when it has one, without code lines
    or examples."""
    docstring = re.search(r'("""|\'\'\')(.*?)\1', task_text, re.DOTALL)
    body = docstring.group(2) if docstring else task_text
    lines = []
    for line in body.splitlines():
        line = line.strip()
        if not line:
            if lines:
                break  # the first paragraph
            continue
        if line.startswith((">>>", "```", "Example", "For example", "def ", "from ", "import ", "class ")):
            break
        lines.append(line)
    text = " ".join(" ".join(lines).split())
    end = SENTENCE_END.search(text)
    sentence = text[: end.end()] if end else text
    if len(sentence) > max_chars:
        sentence = sentence[:max_chars].rsplit(" ", 1)[0] + "."
    return sentence


def plan_from(annotator_plan: str, task_text: str) -> tuple[str, bool]:
    """(the plan's prose, False), or (a plan from the task's first sentence, True) when none is left."""
    prose = prose_part(annotator_plan, PLAN_MIN_WORDS)
    if prose:
        return prose, False
    sentence = task_sentence(task_text)
    return (f"The task: {sentence}" if sentence else ""), True
