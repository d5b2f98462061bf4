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
        return [(t.type, t.string) for t in tokenize.generate_tokens(io.StringIO(code).readline)
                if t.type not in (tokenize.COMMENT, tokenize.NL, tokenize.ENCODING)]
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return None
