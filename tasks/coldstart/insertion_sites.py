"""Insertion sites for inline thoughts: positions inside statements, scored by the policy's
next-token entropy (the cold-start ``entropy`` strategy), and the token view that decides whether a
rewrite kept the original code."""

from __future__ import annotations

import io
import math
import tokenize

_SIGNIFICANT = {tokenize.NAME, tokenize.OP, tokenize.NUMBER, tokenize.STRING}
_LINE_BREAKS = {tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENCODING}


def insertion_candidates(code: str) -> list[int]:
    """Character offsets inside statements: starts of Python tokens that do not open a logical line."""
    line_starts = [0]
    for line in code.splitlines(keepends=True):
        line_starts.append(line_starts[-1] + len(line))
    offsets, at_line_start = [], True
    try:
        for tok in tokenize.generate_tokens(io.StringIO(code).readline):
            if tok.type in _LINE_BREAKS:
                at_line_start = True
                continue
            if tok.type not in _SIGNIFICANT:
                continue
            if not at_line_start:
                offsets.append(line_starts[tok.start[0] - 1] + tok.start[1])
            at_line_start = False
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return []
    return offsets


def token_entropies(model, tokenizer, context: str, code: str) -> list[tuple[int, int, float]]:
    """(start, end, entropy) per model token of ``code``: the policy's entropy when predicting it."""
    import torch

    encoded = tokenizer(context + code, return_offsets_mapping=True, add_special_tokens=False, return_tensors="pt")
    offsets = encoded.pop("offset_mapping")[0].tolist()
    with torch.no_grad():
        logits = model(**encoded).logits[0].float()
    log_probs = torch.log_softmax(logits, dim=-1)
    entropy = (-(log_probs.exp() * log_probs).sum(-1)).tolist()
    spans = []
    for index in range(1, len(offsets)):
        start, end = offsets[index]
        if start >= len(context) and end > start:
            spans.append((start - len(context), end - len(context), entropy[index - 1]))
    return spans


def choose_insertion_offsets(code: str, spans: list[tuple[int, int, float]], k: int) -> list[int]:
    """The ``k`` candidate offsets whose covering model token has the highest entropy."""
    scored = []
    for offset in insertion_candidates(code):
        covering = [h for start, end, h in spans if start <= offset < end]
        if covering and not math.isnan(covering[0]):
            scored.append((covering[0], -offset, offset))
    scored.sort(reverse=True)
    return sorted(offset for _, _, offset in scored[:k])


def code_tokens(code: str) -> list[tuple[int, str]] | None:
    """The Python tokens that carry meaning (no comments, no blank-line tokens); None if it does not tokenize."""
    try:
        return [
            (t.type, t.string)
            for t in tokenize.generate_tokens(io.StringIO(code).readline)
            if t.type not in (tokenize.COMMENT, tokenize.NL, tokenize.ENCODING)
        ]
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return None


def without_docstrings(code: str) -> str:
    """``code`` with the docstrings of its module, classes and functions removed, line for line (a
    HumanEval reference repeats the prompt's docstring: half of a target's tokens, copied).

    A docstring that shares its line with other code, or is the only statement of its body, stays.
    Code that does not parse comes back unchanged."""
    import ast

    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code
    drop: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if not isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) or len(body) < 2:
            continue
        first = body[0]
        if not (
            isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str)
        ):
            continue
        if not isinstance(node, ast.Module) and first.lineno == node.lineno:
            continue  # ``def f(): "doc"; ...`` on one line
        lines = code.splitlines()
        if (
            lines[first.lineno - 1][: first.col_offset].strip()
            or lines[first.end_lineno - 1][first.end_col_offset :].strip()
        ):
            continue
        drop.update(range(first.lineno, first.end_lineno + 1))
    kept = [line for number, line in enumerate(code.splitlines(keepends=True), start=1) if number not in drop]
    return "".join(kept).lstrip("\n")
