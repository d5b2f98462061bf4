"""The next-segment task of Thinking Mid-training, in one place: the prompts the model continues (a
chunk's prefix, raw text), how a reply splits into its opening thought and its guess at the next
segment, and the judges that score a guess against the true suffix (``overlap``: token-level F1 ≥ a
threshold; ``f1``: the F1 itself; ``llm``: an annotator answering YES/NO).

RL mid-training's reward (``midtrain_judge`` in tasks/training/rewards.py), the mid-training
evaluation and the judge-agreement check all read this module, and only this one: an edit to the code
rewards does not touch the mid-training evaluation's code version.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from tasks.thinking import completion_text


def midtraining_rl_rows(
    examples: list[dict[str, Any]], tokenizer, max_prompt_length: int, limit: int | None, opening: str = ""
):
    """RL rows from the corpus's RL half: the prompt is the prefix's last ``max_prompt_length``
    tokens (raw text, no chat template) followed by ``opening`` (``<think>`` when the thought is
    prefilled); ``prefix`` and ``suffix`` go to the judge. (rows, trimmed)."""
    rows, trimmed = [], 0
    for example in examples[:limit] if limit else examples:
        ids = tokenizer(example["prefix"], add_special_tokens=False)["input_ids"]
        if len(ids) > max_prompt_length:
            trimmed += 1
        rows.append(
            {
                "prompt": tokenizer.decode(ids[-max_prompt_length:]) + opening,
                "prefix": example["prefix"],
                "suffix": example["suffix"],
            }
        )
    return rows, trimmed


_THOUGHT = re.compile(r"^\s*<think>(.*?)</think>", re.DOTALL)


def split_thought(completion: str) -> tuple[str | None, str]:
    """(thought, predicted suffix); thought is None when the completion does not open with one."""
    match = _THOUGHT.match(completion)
    if not match:
        return None, completion
    return match.group(1).strip(), completion[match.end() :]


def token_f1(predicted: str, reference: str) -> float:
    ours, theirs = Counter(predicted.split()), Counter(reference.split())
    common = sum((ours & theirs).values())
    if not common:
        return 0.0
    precision, recall = common / sum(ours.values()), common / sum(theirs.values())
    return 2 * precision * recall / (precision + recall)


def overlap_judge(predictions: Sequence[str], suffixes: Sequence[str], threshold: float = 0.3) -> list[float]:
    """Offline judge: 1 when the token-level F1 of the guess against the true suffix reaches ``threshold``."""
    return [1.0 if token_f1(p, s) >= threshold else 0.0 for p, s in zip(predictions, suffixes)]


def judge_request(prefix: str, suffix: str, prediction: str) -> list[dict[str, str]]:
    return [
        {
            "role": "user",
            "content": (
                f"A text begins:\n<<<\n{prefix[-1500:]}\n>>>\nThe true continuation is:\n<<<\n{suffix[:1000]}\n>>>\n"
                f"A model predicted:\n<<<\n{prediction[:1000]}\n>>>\n"
                "Does the prediction say essentially the same thing as the true continuation? Answer YES or NO."
            ),
        }
    ]


def llm_judge(annotator, prefixes: Sequence[str], predictions: Sequence[str], suffixes: Sequence[str]) -> list[float]:
    """1 when the judge's reply starts with YES; any other reply is 0 (the judge was asked)."""
    replies = annotator.complete(
        [judge_request(p, s, g) for p, g, s in zip(prefixes, predictions, suffixes)], max_new_tokens=4
    )
    return [1.0 if reply.strip().upper().startswith("YES") else 0.0 for reply in replies]


def judge_guesses(
    predictions: Sequence[str],
    prefixes: Sequence[str],
    suffixes: Sequence[str],
    judge: str = "overlap",
    threshold: float = 0.3,
    annotator=None,
) -> list[float]:
    """Each guess at the next segment scored by the named judge (1/0, or the F1 for ``f1``)."""
    if judge == "llm":
        if annotator is None:
            raise ValueError("the llm judge needs an annotator")
        return llm_judge(annotator, prefixes, predictions, suffixes)
    if judge == "f1":
        return [token_f1(p, s) for p, s in zip(predictions, suffixes)]
    if judge == "overlap":
        return overlap_judge(predictions, suffixes, threshold)
    raise ValueError(f"unknown judge {judge!r}; known: overlap, f1, llm")


def midtrain_judge_reward(
    completions: Sequence[Any],
    prefix: Sequence[str],
    suffix: Sequence[str],
    judge: str = "overlap",
    threshold: float = 0.3,
    annotator=None,
    **_: Any,
) -> list[float]:
    """The judge's score of the guess after the completion's opening thought; 0 when it does not
    open with a closed thought."""
    parts = [split_thought(completion_text(c)) for c in completions]
    scores = judge_guesses([guess for _, guess in parts], prefix, suffix, judge, threshold, annotator)
    return [v if thought else 0.0 for (thought, _), v in zip(parts, scores)]
