"""The terms of the ``think_anywhere`` reward, each defined once, and their weighted sum.

A term is a ``RewardTerm``: its function (one score per completion, from the completion and, when
it needs one, the sandbox verdict of its code), its default weight, its label, the curve files that
draw it and whether the run summary shows its last value. Everything else reads this registry:
recipe validation (``rl.reward.weights`` may name registered terms only), the GRPO worker's reward
functions (``tasks.training.rewards``), ``thinkflow verify --reward``, the RL plots and the summary.
``weighted_scores`` is the one weighted sum, used by training and by verify.

Adding a term is one module that calls ``register_term``, named in the recipe's
``rl.reward.modules`` so that every process that reads the recipe imports it (the training
worker is one of them):

    register_term(RewardTerm("short", lambda completions, **_: [...], weight=0.0, label="short reply"))

The built-in terms:

* ``correct``: 1 when the sandbox verdict is ``passed`` (all tests), else 0;
* ``tests_passed`` (weight 0 unless a recipe weights it): the share of the problem's test cases
  passed, a denser verifiable reward for a model that rarely passes them all;
* ``upfront_think``: 1 when the response opens with a non-empty ``<think>…</think>`` block and has
  a closed ```python block;
* ``inline_think``: 1 when, on a line of the first closed ```python block, a ``<thinkanywhere>``
  block has code both before and after it (the line read up to ``#``; blocks wrapping a comment
  do not count).

The format terms follow the reference implementation (``tasks.thinking.format_credit``). A verdict of
``infra_error`` is not the solution's fault and is never scored: the term raises
:class:`UnscorableVerdict`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tasks.thinking import completion_text, format_credit


class UnscorableVerdict(RuntimeError):
    pass


@dataclass(frozen=True)
class RewardTerm:
    name: str
    score: Callable[..., list[float]]  # score(completions, verdicts=None) -> one float per completion
    weight: float = 0.0  # the default weight; 0: computed and logged only where a recipe weights it
    label: str = ""  # the legend's and the summary's name
    uses_verdicts: bool = False  # the score reads the sandbox verdict of each completion's code
    plots: tuple[str, ...] = ("reward.png",)  # the RL curve files that draw it (tasks/plots.py)
    summarised: bool = False  # the run summary shows its last logged value

    @property
    def series(self) -> str:
        """Its per-step series in an RL stage's metrics (TRL logs it as ``rewards/<name>/mean``)."""
        return f"reward_{self.name}"


TERMS: dict[str, RewardTerm] = {}


def register_term(term: RewardTerm) -> RewardTerm:
    """Add a term; a second, different term under a registered name is an error."""
    if not term.name.isidentifier():
        raise ValueError(f"reward term name {term.name!r}: use letters, digits and underscores")
    known = TERMS.get(term.name)
    if known is not None and known != term:
        raise ValueError(f"a reward term {term.name!r} is registered already ({known.score.__module__})")
    TERMS[term.name] = term
    return term


def load_term_modules(modules: Sequence[str]) -> None:
    """Import the modules a recipe names in ``rl.reward.modules`` (each registers its terms)."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ValueError(f"rl.reward.modules: {module!r} could not be imported: {exc}") from exc


def resolved_weights(weights: dict[str, float], modules: Sequence[str] = ()) -> dict[str, float]:
    """Every term the reward computes and its weight: the registered defaults, then the recipe's."""
    load_term_modules(modules)
    unknown = sorted(set(weights) - set(TERMS))
    if unknown:
        raise ValueError(f"unknown reward terms {unknown}; registered: {', '.join(sorted(TERMS))}")
    return {**{name: term.weight for name, term in TERMS.items() if term.weight}, **weights}


def weighted_scores(
    completions: Sequence[Any], verdicts: Sequence[dict[str, Any]] | None, weights: dict[str, float]
) -> list[dict[str, float]]:
    """Per completion: each term's score and ``reward``, their weighted sum (what RL optimises and
    ``verify --reward`` reports). ``weights`` as ``resolved_weights`` gives them."""
    scores = {name: TERMS[name].score(completions, verdicts=verdicts) for name in weights}
    rows = []
    for index in range(len(completions)):
        row = {name: values[index] for name, values in scores.items()}
        row["reward"] = sum(weights[name] * row[name] for name in weights)
        rows.append(row)
    return rows


def correct_term(completions: Sequence[Any], verdicts: Sequence[dict[str, Any]], **_: Any) -> list[float]:
    if len(verdicts) != len(completions):
        raise ValueError(f"{len(completions)} completions but {len(verdicts)} verdicts")
    scores = []
    for verdict in verdicts:
        if verdict["status"] == "infra_error":
            raise UnscorableVerdict(
                f"{verdict['problem_id']}: sandbox infrastructure error: {verdict.get('detail', '')}"
            )
        scores.append(1.0 if verdict["status"] == "passed" else 0.0)
    return scores


def tests_passed_term(completions: Sequence[Any], verdicts: Sequence[dict[str, Any]], **_: Any) -> list[float]:
    """The share of each solution's test cases that passed (0 when none ran)."""
    correct_term(completions, verdicts)  # the same checks: as many verdicts as completions, no infrastructure error
    return [verdict["passed"] / verdict["total"] if verdict.get("total") else 0.0 for verdict in verdicts]


def upfront_think_term(completions: Sequence[Any], **_: Any) -> list[float]:
    return [1.0 if format_credit(completion_text(c)).upfront_think else 0.0 for c in completions]


def inline_think_term(completions: Sequence[Any], **_: Any) -> list[float]:
    return [1.0 if format_credit(completion_text(c)).inline_think else 0.0 for c in completions]


register_term(RewardTerm("correct", correct_term, 0.9, "all tests pass", uses_verdicts=True, summarised=True))
register_term(RewardTerm("tests_passed", tests_passed_term, 0.0, "share of tests passed", uses_verdicts=True))
register_term(
    RewardTerm(
        "upfront_think",
        upfront_think_term,
        0.02,
        "opens with <think>",
        plots=("reward.png", "think_share.png"),
    )
)
register_term(
    RewardTerm(
        "inline_think",
        inline_think_term,
        0.08,
        "inline block in a statement",
        plots=("reward.png", "think_share.png"),
        summarised=True,
    )
)
