"""How far the offline overlap judge and an LLM judge agree, on the held-out evaluation's own
(prediction, true continuation) pairs: every model's guess with and without a thought.

The LLM judge is ``midtraining.agreement_judge`` (an annotator: typically ``kind: openai`` at a
``thinkflow serve-annotator`` endpoint, a real HTTP server). Reported: the share of pairs on which
the two agree, Cohen's kappa (agreement beyond what their yes-rates alone give), each judge's
yes-rate, and the four cells of their table.
"""

from __future__ import annotations

import json
from typing import Any

from prefect import task

from tasks.recipe import AnnotatorConfig
from tasks.records import read_jsonl, write_jsonl
from tasks.stage_run import StageRun, retry_transient, stage_cache
from tasks.training.rewards import llm_judge, overlap_judge, split_thought


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
    return {"pairs": n, "agreement": observed, "cohen_kappa": kappa, "yes_rate_first": yes_first, "yes_rate_second": yes_second,
            "both_yes": both, "both_no": neither, "only_first": sum(1 for a, b in zip(first, second) if a and not b),
            "only_second": sum(1 for a, b in zip(first, second) if b and not a)}


def judged_pairs(report_rows: list[list[dict[str, Any]]], labels: list[str], held_out: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """(model, mode, prefix, prediction, truth) for every reply of every held-out evaluation."""
    examples = {(row["chunk_id"], row["boundary"]): row for row in held_out}
    pairs = []
    for label, rows in zip(labels, report_rows):
        for row in rows:
            example = examples.get((row["chunk_id"], row["boundary"]))
            if example is None:
                raise ValueError(f"evaluation row {row['chunk_id']}#{row['boundary']} of {label} is not in the held-out set")
            guess = split_thought(row["thinking_reply"])[1]
            for mode, prediction in (("thinking", guess), ("no_thinking", row["direct_reply"])):
                pairs.append({"model": label, "mode": mode, "prefix": example["prefix"], "prediction": prediction,
                              "truth": example["suffix"]})
    return pairs


@task(name="judge-agreement", retry_condition_fn=retry_transient, retries=1, retry_delay_seconds=10,
      cache_policy=stage_cache(), persist_result=True)
def measure_judge_agreement(report_ids: list[str], labels: list[str], held_out_id: str, judge: AnnotatorConfig,
                            judge_model_id: str | None, threshold: float, dtype: str) -> str:
    """A report: agreement.json (the statistics) and pairs.jsonl (every pair with both verdicts)."""
    from tasks.annotators import make_annotator

    inputs = {"held_out": held_out_id, **{f"report_{i}": r for i, r in enumerate(report_ids)},
              **({"judge": judge_model_id} if judge_model_id else {})}
    params = {"labels": labels, "judge": judge.cache_key(), "threshold": threshold, "dtype": dtype}
    with StageRun("judge_agreement", inputs=inputs, params=params) as run:
        rows = [read_jsonl(run.input_path(f"report_{i}") / "rows.jsonl") for i in range(len(report_ids))]
        pairs = judged_pairs(rows, labels, read_jsonl(run.input_path("held_out") / "train.jsonl"))
        client = make_annotator(judge, run.input_path("judge") if judge_model_id else None, run.store.home / "cache" / "annotator", dtype)
        by_llm = llm_judge(client, [p["prefix"] for p in pairs], [p["prediction"] for p in pairs], [p["truth"] for p in pairs])
        by_overlap = overlap_judge([p["prediction"] for p in pairs], [p["truth"] for p in pairs], threshold)
        stats = agreement_stats(by_llm, by_overlap)
        run.log.info("judge agreement (LLM %s vs overlap F1 >= %s) on %d pairs: %s", judge.model, threshold, len(pairs), json.dumps(stats))
        staged = run.staging("agreement")
        write_jsonl(staged / "pairs.jsonl", [{**p, "llm": a, "overlap": b} for p, a, b in zip(pairs, by_llm, by_overlap)])
        (staged / "agreement.json").write_text(json.dumps({"llm_judge": judge.to_json(), "overlap_threshold": threshold,
                                                           "first": "llm", "second": "overlap", **stats}, indent=1))
        return run.output("agreement", staged, kind="report", name="judge-agreement", metrics=stats)
