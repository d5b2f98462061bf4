"""What the Think-Anywhere paper measures about thinking: how often and where a model thinks, how
long, whether thinking pays (tokens spent vs accuracy), and how uncertain the model is where it
chose to think (next-token entropy at think sites vs every other code position).

Entropy is computed on the response with its inline blocks removed, by the evaluated model: at a
think site the model was about to write the code that follows the block, so the entropy of that
next-token distribution says how unsure it was there. The upfront ``<think>`` block stays in the
context; the statistic covers positions inside the executed code block only.
"""

from __future__ import annotations

import io
import keyword
import statistics
import tokenize
from collections import Counter
from collections.abc import Callable
from typing import Any

from tasks.thinking import (
    FENCE_OPEN,
    INLINE_BLOCK,
    THINK_CLOSE,
    InlineThought,
    format_credit,
    has_inline_thought_in_statement,
    has_upfront_think,
    parse_response,
)

THINK_TOKEN_BUCKETS = (0, 16, 64, 256)  # overthinking view: 0, 1-16, 17-64, 65-256, more


def token_kind_before(code_before: str) -> str:
    """The kind of the last Python token before a block on its line: keyword, name, number, string,
    bracket, operator, delimiter; ``line_start`` when nothing precedes it."""
    last = None
    try:
        for token in tokenize.generate_tokens(io.StringIO(code_before).readline):
            if token.type not in (
                tokenize.NEWLINE,
                tokenize.NL,
                tokenize.ENDMARKER,
                tokenize.INDENT,
                tokenize.DEDENT,
                tokenize.COMMENT,
            ):
                last = token
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass  # a statement cut by the block: the tokens read so far still count
    if last is None:
        return "line_start"
    if last.type == tokenize.NAME:
        return "keyword" if keyword.iskeyword(last.string) else "name"
    if last.type == tokenize.NUMBER:
        return "number"
    if last.type == tokenize.STRING or last.type == getattr(tokenize, "FSTRING_END", -1):
        return "string"
    if last.string in "([{":
        return "bracket"
    if last.string in ",:;)]}" or last.string == "->":
        return "delimiter"
    return "operator"


def site_features(thought: InlineThought, code_lines: int, count_tokens: Callable[[str], int]) -> dict[str, Any]:
    before, after = thought.code_before, thought.code_after.strip()
    length = len(before) + len(after)
    position = "start" if not before.strip() else "end" if not after else "middle"
    return {
        "line": thought.line,
        "relative_line": thought.line / max(1, code_lines - 1),
        "position": position,
        "position_fraction": len(before) / length if length else 0.0,
        "token_before": token_kind_before(before),
        "tokens": count_tokens(thought.text),
    }


def response_features(response: str, count_tokens: Callable[[str], int]) -> dict[str, Any]:
    """Per-response thinking features; ``sites`` lists every non-empty inline block in the code."""
    parsed = parse_response(response)
    upfront = (
        parsed.upfront_thought if has_upfront_think(response) else None
    )  # the reward's definition (tasks/thinking.py)
    lines = (parsed.code_with_thoughts or "").rstrip("\n").count("\n") + 1
    sites = [site_features(t, lines, count_tokens) for t in parsed.inline_thoughts if t.text.strip()]
    upfront_tokens = count_tokens(upfront) if upfront else 0
    inline_tokens = sum(site["tokens"] for site in sites)
    return {
        "upfront_think": upfront is not None,
        "upfront_tokens": upfront_tokens,
        "inline_blocks": len(sites),
        "inline_in_statement": format_credit(response).inline_think,  # what the reward credits
        "inline_well_formed": has_inline_thought_in_statement(response),  # stricter: what the cold-start set demands
        "inline_tokens": inline_tokens,
        "think_tokens": upfront_tokens + inline_tokens,
        "format_problems": len(parsed.problems),
        "sites": sites,
    }


def bucket_label(tokens: int) -> str:
    lower = 0
    for edge in THINK_TOKEN_BUCKETS:
        if tokens <= edge:
            return f"{lower}-{edge}" if edge else "0"
        lower = edge + 1
    return f">{THINK_TOKEN_BUCKETS[-1]}"


def bucket_labels() -> list[str]:
    """Every band of thinking tokens, in order."""
    return [bucket_label(edge) for edge in THINK_TOKEN_BUCKETS] + [bucket_label(THINK_TOKEN_BUCKETS[-1] + 1)]


def shares(values: list[str]) -> dict[str, float]:
    counts = Counter(values)
    return {name: counts[name] / len(values) for name in sorted(counts)} if values else {}


def mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarize_thinking(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Aggregate per-sample rows (response_features plus ``status``) into the thinking report.

    Means over an empty set are ``None`` (nothing to average), never 0."""
    if not rows:
        raise ValueError("thinking statistics need at least one response")
    sites = [site for row in rows for site in row["sites"]]
    thinking = [row for row in rows if row["inline_blocks"]]
    buckets: dict[str, list[bool]] = {}
    for row in sorted(rows, key=lambda r: r["think_tokens"]):
        buckets.setdefault(bucket_label(row["think_tokens"]), []).append(row["status"] == "passed")
    return {
        "responses": len(rows),
        "upfront_think_rate": sum(r["upfront_think"] for r in rows) / len(rows),
        "inline_think_rate": sum(r["inline_in_statement"] for r in rows) / len(rows),
        "inline_well_formed_rate": sum(r.get("inline_well_formed", False) for r in rows) / len(rows),
        "any_inline_rate": len(thinking) / len(rows),
        "inline_blocks_per_response": len(sites) / len(rows),
        "inline_blocks_per_thinking_response": mean([r["inline_blocks"] for r in thinking]),
        "upfront_tokens_mean": mean([r["upfront_tokens"] for r in rows if r["upfront_think"]]),
        "inline_thought_tokens_mean": mean([site["tokens"] for site in sites]),
        "think_tokens_mean": mean([r["think_tokens"] for r in rows]),
        "format_problem_rate": sum(bool(r["format_problems"]) for r in rows) / len(rows),
        "site_position": shares([site["position"] for site in sites]),
        "site_token_before": shares([site["token_before"] for site in sites]),
        "site_relative_line_mean": mean([site["relative_line"] for site in sites]),
        "accuracy_by_think_tokens": {
            label: {"samples": len(passed), "accuracy": sum(passed) / len(passed)} for label, passed in buckets.items()
        },
    }


def think_site_offsets(response: str) -> tuple[str, list[int], tuple[int, int] | None]:
    """The response with every inline block removed, the offsets in it where blocks sat, and the
    span of its executed code block (None without one)."""
    pieces, offsets, removed, last = [], [], 0, 0
    for match in INLINE_BLOCK.finditer(response):
        pieces.append(response[last : match.start()])
        offsets.append(match.start() - removed)
        removed += match.end() - match.start()
        last = match.end()
    pieces.append(response[last:])
    stripped = "".join(pieces)
    cut = stripped.find(THINK_CLOSE)
    body_start = 0 if cut < 0 else cut + len(THINK_CLOSE)
    opens = list(FENCE_OPEN.finditer(stripped, body_start))
    if not opens:
        return stripped, offsets, None
    start = opens[-1].end()
    end = stripped.find("```", start)
    return stripped, offsets, (start, len(stripped) if end < 0 else end)


def entropy_positions(tokenizer, prompt_text: str, response: str) -> tuple[list[int], list[int], list[int]] | None:
    """For one reply: the token ids of prompt + reply without its inline blocks, the tokens that
    sit at a think site and the other tokens of its executed code (None without a site in the code).
    The entropy about token t is read from the logits at t - 1."""
    stripped, offsets, code = think_site_offsets(response)
    if code is None:
        return None
    site_offsets = sorted({s for s in offsets if code[0] <= s <= code[1]})
    if not site_offsets:
        return None
    base = len(prompt_text)
    encoded = tokenizer(prompt_text + stripped, return_offsets_mapping=True, add_special_tokens=False)
    spans = encoded["offset_mapping"]
    site_tokens = set()
    for site in site_offsets:
        at = next((t for t, (_, end) in enumerate(spans) if end > base + site), None)
        if at is not None and at > 0:
            site_tokens.add(at)
    code_tokens = [
        t
        for t, (start, end) in enumerate(spans)
        if t > 0 and start >= base + code[0] and end <= base + code[1] and t not in site_tokens
    ]
    return encoded["input_ids"], sorted(site_tokens), code_tokens


def entropy_at_think_sites_batched(
    model, tokenizer, items: list[tuple[str, str]], batch_size: int = 8, progress=None
) -> list[dict[str, list[float]] | None]:
    """Next-token entropy (nats) at each think site and at every other code position of each
    (prompt, reply), None for a reply with no inline block inside its executed code. Replies go
    through the model in right-padded batches of similar length, and only the positions that are
    read get logits (a reply's code is a fraction of its prompt + reply)."""
    import torch

    found = [entropy_positions(tokenizer, prompt, response) for prompt, response in items]
    results: list[dict[str, list[float]] | None] = [None] * len(items)
    order = sorted((i for i, f in enumerate(found) if f is not None), key=lambda i: len(found[i][0]))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        width = max(len(found[i][0]) for i in rows)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, i in enumerate(rows):
            ids[r, : len(found[i][0])] = torch.tensor(found[i][0])
            mask[r, : len(found[i][0])] = 1
        read = sorted({t - 1 for i in rows for t in found[i][1] + found[i][2]})
        column = {position: c for c, position in enumerate(read)}
        with torch.no_grad():
            logits = model(
                input_ids=ids.to(model.device),
                attention_mask=mask.to(model.device),
                logits_to_keep=torch.tensor(read, device=model.device),
            ).logits.float()
        log_probs = torch.log_softmax(logits, dim=-1)
        entropy = -(log_probs.exp() * log_probs).sum(-1).cpu()  # [row, column of position t - 1]
        for r, i in enumerate(rows):
            _, sites, others = found[i]
            results[i] = {
                "sites": [float(entropy[r, column[t - 1]]) for t in sites],
                "elsewhere": [float(entropy[r, column[t - 1]]) for t in others],
            }
        if progress:
            progress(len(rows))
    return results


def entropy_at_think_sites(model, tokenizer, prompt_text: str, response: str) -> dict[str, list[float]] | None:
    """Next-token entropy (nats) at each think site and at every other code position, or None when
    the response has no inline block inside its executed code."""
    return entropy_at_think_sites_batched(model, tokenizer, [(prompt_text, response)])[0]


def summarize_entropy(
    per_response: list[dict[str, list[float]]], resamples: int = 1000, confidence: float = 0.95
) -> dict[str, Any]:
    """Mean entropy at think sites and elsewhere, and their ratio with a bootstrap interval over
    responses (a response's sites are not independent of each other)."""
    from tasks.evaluation.scoring import ratio_interval

    sites = [v for item in per_response for v in item["sites"]]
    elsewhere = [v for item in per_response for v in item["elsewhere"]]
    site_mean, other_mean = mean(sites), mean(elsewhere)
    return {
        "responses_with_sites": len(per_response),
        "think_sites": len(sites),
        "other_positions": len(elsewhere),
        "entropy_think_sites": site_mean,
        "entropy_elsewhere": other_mean,
        "entropy_ratio": site_mean / other_mean if site_mean is not None and other_mean else None,
        "entropy_ratio_ci": ratio_interval(
            [(item["sites"], item["elsewhere"]) for item in per_response], resamples, confidence
        ),
        "entropy_think_sites_median": median(sites),
        "entropy_elsewhere_median": median(elsewhere),
    }
