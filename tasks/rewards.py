"""Rewards: pure functions with one signature, registered by name.

The Think-Anywhere reward is ``0.9·correct + 0.02·upfront_think + 0.08·inline_think``:
* ``correct``: 1 when the sandbox verdict is ``passed`` (all tests), else 0;
* ``upfront_think``: 1 when the response opens with a non-empty ``<think>…</think>`` block;
* ``inline_think``: 1 when a well-formed ``<thinkanywhere>`` block sits inside a code statement
  (code before it on its line) and the code runs without it (see tasks/thinking.py).

A verdict of ``infra_error`` is not the solution's fault and is never scored: the term raises
:class:`UnscorableVerdict`, and the stage retries.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from tasks.thinking import has_inline_thought_in_statement, has_upfront_think

DEFAULT_WEIGHTS = {"correct": 0.9, "upfront_think": 0.02, "inline_think": 0.08}


class UnscorableVerdict(RuntimeError):
    pass


def completion_text(completion: Any) -> str:
    """TRL passes a string, or for conversational data a list of messages."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content", ""))
    raise TypeError(f"unexpected completion type {type(completion).__name__}")


def correct_term(completions: Sequence[Any], verdicts: Sequence[dict[str, Any]], **_: Any) -> list[float]:
    if len(verdicts) != len(completions):
        raise ValueError(f"{len(completions)} completions but {len(verdicts)} verdicts")
    scores = []
    for verdict in verdicts:
        if verdict["status"] == "infra_error":
            raise UnscorableVerdict(f"{verdict['problem_id']}: sandbox infrastructure error: {verdict.get('detail', '')}")
        scores.append(1.0 if verdict["status"] == "passed" else 0.0)
    return scores


def upfront_think_term(completions: Sequence[Any], **_: Any) -> list[float]:
    return [1.0 if has_upfront_think(completion_text(c)) else 0.0 for c in completions]


def inline_think_term(completions: Sequence[Any], **_: Any) -> list[float]:
    return [1.0 if has_inline_thought_in_statement(completion_text(c)) else 0.0 for c in completions]


REWARD_TERMS: dict[str, Callable[..., list[float]]] = {
    "correct": correct_term,
    "upfront_think": upfront_think_term,
    "inline_think": inline_think_term,
}


def think_anywhere_reward(
    completions: Sequence[Any],
    verdicts: Sequence[dict[str, Any]],
    weights: dict[str, float] | None = None,
    **kwargs: Any,
) -> list[float]:
    """The weighted sum of the three terms, one score per completion."""
    weights = weights or DEFAULT_WEIGHTS
    totals = [0.0] * len(completions)
    for name, weight in weights.items():
        scores = REWARD_TERMS[name](completions, verdicts=verdicts, **kwargs)
        totals = [t + weight * s for t, s in zip(totals, scores)]
    return totals


REWARDS: dict[str, Callable[..., list[float]]] = {"think_anywhere": think_anywhere_reward}
