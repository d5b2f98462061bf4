"""Rewards: the recipe's ``rl.reward.name`` -> the TRL reward functions (``reward_functions``).

``think_anywhere`` (code RL) is the weighted sum of its terms, ``0.9·correct + 0.02·upfront_think +
0.08·inline_think`` by default; the terms, their weights and the sum are defined in
``tasks.training.reward_terms`` (the registry, whose ``weighted_scores`` is the sum verify and the probe
report). TRL gets each term as a function with its weight (the same sum, in TRL's float32; a first
wiring with the sum as one function of weight 1 and the terms at weight 0 changed GRPO's trajectory in
tests/integration/test_training.py), logged per step as ``rewards/<term>/mean``.

``midtrain_judge`` (Thinking Mid-training RL): the completion is ``<think>thought</think>`` and
then the model's guess at the next segment; 1 when a judge says the guess matches the true
suffix. The judge is ``overlap`` (offline: token-level F1 against the suffix ≥ a threshold),
``f1`` (offline and graded: the token-level F1 itself, for a policy whose guesses rarely reach a
threshold, so its groups still differ) or ``llm`` (an annotator from tasks/annotators.py answering
YES/NO). With ``prefill_think`` the prompt ends with ``<think>`` and the completion starts inside
the thought: it is read with the tag put back.

``math`` (RLVR post-training): 1 when math-verify finds the completion's answer equal to the
reference answer.

A verdict of ``infra_error`` is not the solution's fault and is never scored: the term raises
:class:`UnscorableVerdict`, the sandbox batch is retried, and if it fails again the stage fails.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from tasks.midtraining.next_segment import midtrain_judge_reward, split_thought
from tasks.thinking import THINK_OPEN
from tasks.training.reward_terms import (
    UnscorableVerdict,
    completion_text,
    correct_term,
    inline_think_term,
    resolved_weights,
    tests_passed_term,
    upfront_think_term,
    weighted_scores,
)

__all__ = [
    "UnscorableVerdict",
    "completion_text",
    "correct_term",
    "inline_think_term",
    "reward_functions",
    "tests_passed_term",
    "think_anywhere_reward",
    "think_anywhere_scores",
    "upfront_think_term",
]


# -- think_anywhere ------------------------------------------------------------------------------


def correct_varies_term(correct: Sequence[float], problem_json: Sequence[str]) -> list[float]:
    """1 for each completion whose group (the consecutive completions of one prompt, as TRL orders a
    generation batch) has some but not all correct: the mean is the share of groups in which
    correctness carries signal."""
    flags: list[float] = []
    start = 0
    while start < len(correct):
        end = start
        while end < len(correct) and problem_json[end] == problem_json[start]:
            end += 1
        group = correct[start:end]
        flags += [1.0 if 0 < sum(group) < len(group) else 0.0] * len(group)
        start = end
    return flags


def think_anywhere_scores(
    completions: Sequence[Any],
    verdicts: Sequence[dict[str, Any]] | None,
    weights: dict[str, float] | None = None,
    modules: Sequence[str] = (),
) -> list[dict[str, float]]:
    """Per completion: each term's score and ``reward``, their weighted sum (what RL optimises):
    ``weights`` over the registered defaults."""
    return weighted_scores(completions, verdicts, resolved_weights(weights or {}, modules))


def think_anywhere_reward(
    completions: Sequence[Any],
    verdicts: Sequence[dict[str, Any]] | None,
    weights: dict[str, float] | None = None,
) -> list[float]:
    """The weighted sum of the terms, one score per completion."""
    return [row["reward"] for row in think_anywhere_scores(completions, verdicts, weights)]


def sandbox_verdicts(completions: Sequence[Any], problem_json: Sequence[str], sandbox_cfg) -> list[dict[str, Any]]:
    """Run each completion's code against its problem's tests. Infrastructure failures are retried
    where they happen, in the sandbox pool (``infra_retries``); one still left is never scored
    (``correct_term`` raises on it, naming the problem)."""
    from sandbox.pool import run_batch
    from sandbox.verdicts import Job
    from tasks.thinking import extract_code

    problems = [json.loads(p) for p in problem_json]
    jobs = [
        Job(p["id"], f"rollout-{i}", extract_code(completion_text(c)), p["tests"])
        for i, (p, c) in enumerate(zip(problems, completions))
    ]
    return [v.to_dict() for v in run_batch(jobs, sandbox_cfg)]


def with_prefilled_thought(completions: Sequence[Any]) -> list[str]:
    """Completions of prompts that end with ``<think>``, read as written: the tag put back."""
    return [THINK_OPEN + completion_text(c) for c in completions]


# -- math ----------------------------------------------------------------------------------------


def math_reward(completions: Sequence[Any], answer: Sequence[str], **_: Any) -> list[float]:
    """1 when math-verify parses an answer from the completion equal to the reference answer."""
    try:
        from math_verify import parse, verify
    except ImportError as exc:
        raise RuntimeError("the math reward needs math-verify: pip install math-verify") from exc
    scores = []
    for completion, reference in zip(completions, answer):
        _, body = split_thought(completion_text(completion))
        gold = parse(f"${reference}$") or parse(str(reference))
        scores.append(1.0 if gold and verify(gold, parse(body)) else 0.0)
    return scores


# -- the registry: a name in the recipe -> TRL reward functions and their weights ---------------------


def think_anywhere_functions(settings: dict[str, Any], sandbox_cfg) -> dict[str, tuple[Callable, float]]:
    weights = resolved_weights(settings.get("weights", {}), settings.get("modules", ()))
    last: dict[str, Any] = {}

    def scored(completions, problem_json) -> dict[str, Any]:
        """TRL calls every function on the same rollouts: score them once (one sandbox batch, which
        ``correct_varies`` reads whether or not a weighted term does)."""
        key = json.dumps([[completion_text(c) for c in completions], list(problem_json)])
        if last.get("key") != key:
            verdicts = sandbox_verdicts(completions, problem_json, sandbox_cfg)
            last.update(key=key, verdicts=verdicts, rows=weighted_scores(completions, verdicts, weights))
        return last

    def term_function(name: str) -> Callable:
        def term(completions, problem_json, **kwargs):
            return [row[name] for row in scored(completions, problem_json)["rows"]]

        term.__name__ = name  # TRL logs each function under its name
        return term

    def correct_varies(completions, problem_json, **kwargs):  # logged, never rewarded
        return correct_varies_term(
            correct_term(completions, scored(completions, problem_json)["verdicts"]), problem_json
        )

    return {  # TRL sums the terms with these weights: weighted_scores' sum, in TRL's float32
        **{name: (term_function(name), weight) for name, weight in weights.items()},
        "correct_varies": (correct_varies, 0.0),
    }


def midtrain_judge_functions(settings: dict[str, Any], sandbox_cfg) -> dict[str, tuple[Callable, float]]:
    judge, threshold = settings.get("judge", "overlap"), settings.get("threshold", 0.3)
    read = (
        with_prefilled_thought
        if settings.get("prefill_think")
        else (lambda completions: [completion_text(c) for c in completions])
    )
    annotator = None
    if judge == "llm":
        from pathlib import Path

        from tasks.annotators import make_annotator
        from tasks.recipe import AnnotatorConfig

        model_dir = Path(settings["annotator_dir"]) if settings.get("annotator_dir") else None
        annotator = make_annotator(AnnotatorConfig(**settings["annotator"]), model_dir, None)

    def judge_term(completions, prefix, suffix, **kwargs):
        return midtrain_judge_reward(
            read(completions), prefix, suffix, judge=judge, threshold=threshold, annotator=annotator
        )

    judge_term.__name__ = "judge"  # TRL logs each term under its function's name

    def upfront_think(completions, **kwargs):  # with prefill_think: the thought was closed
        return [1.0 if split_thought(text)[0] else 0.0 for text in read(completions)]

    def thought_words(completions, **kwargs):  # weight 0: logged per step (the paper's thinking length), never rewarded
        return [float(len((split_thought(text)[0] or "").split())) for text in read(completions)]

    return {
        "judge": (judge_term, 1.0),
        "upfront_think": (upfront_think, settings.get("format_weight", 0.0)),
        "thought_words": (thought_words, 0.0),
    }


def math_functions(settings: dict[str, Any], sandbox_cfg) -> dict[str, tuple[Callable, float]]:
    def correct(completions, answer, **kwargs):
        return math_reward(completions, answer)

    def upfront_think(completions, **kwargs):
        return upfront_think_term(completions)

    return {"correct": (correct, 1.0), "upfront_think": (upfront_think, settings.get("format_weight", 0.0))}


REWARDS: dict[str, Callable[[dict[str, Any], Any], dict[str, tuple[Callable, float]]]] = {
    "think_anywhere": think_anywhere_functions,
    "midtrain_judge": midtrain_judge_functions,
    "math": math_functions,
}


def reward_functions(name: str, settings: dict[str, Any], sandbox_cfg) -> dict[str, tuple[Callable, float]]:
    """{term: (TRL reward function, weight)}; a term with weight 0 is still computed and logged
    (as ``rewards/<term>/mean``: each function carries its term's name)."""
    if name not in REWARDS:
        raise ValueError(f"unknown reward {name!r}; registered: {sorted(REWARDS)}")
    terms = REWARDS[name](settings, sandbox_cfg)
    misnamed = [term for term, (function, _) in terms.items() if function.__name__ != term]
    if misnamed:
        raise RuntimeError(f"reward {name}: functions for {misnamed} are not named after their terms")
    return terms
