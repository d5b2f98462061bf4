"""How far the offline overlap judge and an LLM judge agree, on the held-out evaluation's own
(prediction, true continuation) pairs: every model's guess with and without a thought.

The LLM judge is ``midtraining.agreement_judge`` (an annotator: typically ``kind: openai`` at a
``thinkflow serve-annotator`` endpoint, a real HTTP server). Reported: the share of pairs on which
the two agree, Cohen's kappa (agreement beyond what their yes-rates alone give), each judge's
yes-rate, and the four cells of their table, with bootstrap intervals over pairs.

Agreement alone cannot say which judge is wrong, so the LLM judge also answers two sets of
control pairs built from the held-out set itself: the true continuation as the prediction (a
judge that works says YES) and another example's continuation as the prediction (it says NO).
Its yes-rates on them are its sensitivity and false-positive rate: a judge that says NO to the
truth is measured as unable to judge, rather than read as disagreeing with the overlap judge.
"""

from __future__ import annotations

import json
from typing import Any

from tasks.midtraining.next_segment import llm_judge, overlap_judge, split_thought
from tasks.recipe import AnnotatorConfig
from tasks.records import read_jsonl, write_jsonl
from tasks.stage_run import StageRun, stage


def agreement_stats(first: list[float], second: list[float]) -> dict[str, float]:
    """Agreement of two binary judges on the same pairs (1 = yes)."""
    if len(first) != len(second) or not first:
        raise ValueError(f"agreement needs two equally long, non-empty verdict lists ({len(first)} vs {len(second)})")
    n = len(first)
    both = sum(1 for a, b in zip(first, second) if a and b)
    neither = sum(1 for a, b in zip(first, second) if not a and not b)
    observed = (both + neither) / n
    yes_first, yes_second = sum(map(bool, first)) / n, sum(map(bool, second)) / n
    expected = yes_first * yes_second + (1 - yes_first) * (1 - yes_second)
    kappa = (observed - expected) / (1 - expected) if expected < 1 else 1.0
    return {
        "pairs": n,
        "agreement": observed,
        "cohen_kappa": kappa,
        "yes_rate_first": yes_first,
        "yes_rate_second": yes_second,
        "both_yes": both,
        "both_no": neither,
        "only_first": sum(1 for a, b in zip(first, second) if a and not b),
        "only_second": sum(1 for a, b in zip(first, second) if b and not a),
    }


def bootstrap_agreement(
    first: list[float], second: list[float], resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> dict[str, tuple[float, float]]:
    """Percentile intervals of the agreement and of Cohen's kappa, resampling pairs with replacement
    (the same resamples for both: one seed)."""
    from tasks.intervals import unit_interval

    def stat(name: str):
        return lambda picks: agreement_stats([first[i] for i in picks], [second[i] for i in picks])[name]

    return {
        name: unit_interval(len(first), stat(name), resamples, confidence, seed)
        for name in ("agreement", "cohen_kappa")
    }


def control_pairs(held_out: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pairs whose right verdict is known: each held-out example with its own continuation as the
    prediction (YES), and with the continuation of the example half the set away (NO; skipped
    when the two continuations are the same text)."""
    pairs, size = [], len(held_out)
    for index, example in enumerate(held_out):
        pairs.append(
            {
                "control": "truth",
                "prefix": example["prefix"],
                "prediction": example["suffix"],
                "truth": example["suffix"],
            }
        )
        other = held_out[(index + max(1, size // 2)) % size]["suffix"]
        if size > 1 and other.strip() != example["suffix"].strip():
            pairs.append(
                {"control": "mismatch", "prefix": example["prefix"], "prediction": other, "truth": example["suffix"]}
            )
    return pairs


def control_rates(pairs: list[dict[str, Any]], verdicts: list[float]) -> dict[str, float]:
    """The judge's yes-rate on the true continuations and on mismatched ones."""
    rates = {}
    for control in ("truth", "mismatch"):
        picked = [v for p, v in zip(pairs, verdicts) if p["control"] == control]
        rates[f"llm_yes_rate_on_{control}"] = sum(map(bool, picked)) / len(picked) if picked else float("nan")
        rates[f"{control}_controls"] = len(picked)
    return rates


def judged_pairs(
    report_rows: list[list[dict[str, Any]]], labels: list[str], held_out: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """(model, mode, prefix, prediction, truth) for every reply of every held-out evaluation."""
    examples = {(row["chunk_id"], row["boundary"]): row for row in held_out}
    pairs = []
    for label, rows in zip(labels, report_rows):
        for row in rows:
            example = examples.get((row["chunk_id"], row["boundary"]))
            if example is None:
                raise ValueError(
                    f"evaluation row {row['chunk_id']}#{row['boundary']} of {label} is not in the held-out set"
                )
            guess = split_thought(row["thinking_reply"])[1]
            for mode, prediction in (("thinking", guess), ("no_thinking", row["direct_reply"])):
                pairs.append(
                    {
                        "model": label,
                        "mode": mode,
                        "prefix": example["prefix"],
                        "prediction": prediction,
                        "truth": example["suffix"],
                    }
                )
    return pairs


@stage(
    "judge_agreement",
    inputs={"report_": "report_ids", "held_out": "held_out_id", "judge": "judge_model_id"},
    retries=1,
)
def measure_judge_agreement(
    report_ids: list[str],
    labels: list[str],
    held_out_id: str,
    judge: AnnotatorConfig,
    judge_model_id: str | None,
    threshold: float,
    dtype: str,
) -> str:
    """A report: agreement.json (the statistics), pairs.jsonl (every pair with both verdicts) and
    controls.jsonl (the LLM judge's verdicts on pairs whose answer is known)."""
    from tasks.annotators import make_annotator

    with StageRun() as run:
        rows = [read_jsonl(run.input_path(f"report_{i}") / "rows.jsonl") for i in range(len(report_ids))]
        pairs = judged_pairs(rows, labels, read_jsonl(run.input_path("held_out") / "train.jsonl"))
        controls = control_pairs(read_jsonl(run.input_path("held_out") / "train.jsonl"))
        client = make_annotator(
            judge, run.input_path("judge") if judge_model_id else None, run.store.home / "cache" / "annotator", dtype
        )
        asked = pairs + controls
        verdicts = llm_judge(
            client, [p["prefix"] for p in asked], [p["prediction"] for p in asked], [p["truth"] for p in asked]
        )
        by_llm, on_controls = verdicts[: len(pairs)], verdicts[len(pairs) :]
        by_overlap = overlap_judge([p["prediction"] for p in pairs], [p["truth"] for p in pairs], threshold)
        stats = agreement_stats(by_llm, by_overlap)
        for name, (low, high) in bootstrap_agreement(by_llm, by_overlap).items():
            stats.update({f"{name}_ci_low": low, f"{name}_ci_high": high})
        stats.update(control_rates(controls, on_controls))
        run.log.info(
            "judge agreement (LLM %s vs overlap F1 >= %s) on %d pairs: %s",
            judge.model,
            threshold,
            len(pairs),
            json.dumps(stats),
        )
        staged = run.staging("agreement")
        write_jsonl(
            staged / "pairs.jsonl", [{**p, "llm": a, "overlap": b} for p, a, b in zip(pairs, by_llm, by_overlap)]
        )
        write_jsonl(staged / "controls.jsonl", [{**p, "llm": v} for p, v in zip(controls, on_controls)])
        (staged / "agreement.json").write_text(
            json.dumps(
                {
                    "llm_judge": judge.to_json(),
                    "overlap_threshold": threshold,
                    "first": "llm",
                    "second": "overlap",
                    **stats,
                },
                indent=1,
            )
        )
        return run.output("agreement", staged, kind="report", name="judge-agreement", metrics=stats)
