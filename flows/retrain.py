"""Scheduled retraining: re-run a pipeline on its recipe and current problem data, then compare the
new checkpoint with the best one on record.

    prefect deployment run 'retrain/weekly' --param config=configs/default.yaml
    thinkflow run retrain --config configs/tiny.yaml

Caching does the noticing: problem loads are keyed on the bytes of the source files as well as the
recipe, and every later stage on the ids it reads, so new data or a changed recipe section re-runs
exactly the stages it reaches, and nothing changed means nothing re-runs (the summary says so).
When a new checkpoint comes out, the previous best (from the newest ``retrain-decision`` in
lineage) is evaluated on the same eval set (cached when it already was) and the comparison is
recorded as a new decision. The pipeline runs as a subflow, found by name (``flows.runtime.pipelines``);
its summary's ``outputs`` name the final checkpoint, its report and the eval set.
"""

from __future__ import annotations

from prefect import flow

from flows.runtime.pipelines import pipeline_flow
from flows.runtime.stage_log import StageLog
from flows.stage_sequences import evaluate_stage, pipeline_recipe
from storage import ArtifactStore, LineageStore
from tasks.evaluation.retrain_decision import best_on_record, record_retrain_decision
from tasks.recipe import RecipeError
from tasks.stage_run import run_logger

RETRAINABLE = ("think-anywhere", "thinking-midtraining")
METRIC = "pass@1"


def what_ran(summary: dict) -> str:
    fresh = [s["label"] for s in summary["stages"] if not s["cached"]]
    if not fresh:
        return (
            f"no new problem data and no recipe change: all {len(summary['stages'])} stages of {summary['pipeline']} "
            "came from the cache; no training ran"
        )
    return f"{len(fresh)} of {len(summary['stages'])} stages ran anew: {', '.join(fresh)}"


def evaluated_outputs(summary: dict) -> dict[str, str]:
    outputs = summary.get("outputs", {})
    if "final_report" not in outputs:
        raise RecipeError(
            f"retrain: the {summary['pipeline']} run evaluated no final checkpoint (set midtraining.post_training: code "
            "for thinking-midtraining)"
        )
    return outputs


@flow(name="retrain")
def retrain(
    config: str = "configs/default.yaml", overrides: list[str] | None = None, pipeline: str = "think-anywhere"
) -> dict:
    if pipeline not in RETRAINABLE:
        raise RecipeError(f"retrain: pipeline {pipeline!r} is not one of {', '.join(RETRAINABLE)}")
    recipe = pipeline_recipe(config, overrides)
    store = ArtifactStore()
    lineage = LineageStore(store.lineage_path)
    best = best_on_record(store, lineage)  # before this run adds anything

    summary = pipeline_flow(pipeline)(config=config, overrides=overrides)  # a subflow: cached stages return at once
    outputs = evaluated_outputs(summary)
    stages = StageLog("retrain", recipe.runner, recipe.tracking)
    new_checkpoint, new_report = outputs["final_checkpoint"], outputs["final_report"]
    decision = None
    if best is None or best["checkpoint"] != new_checkpoint:
        best_report = None
        if best is not None:  # the incumbent on this run's eval set, so both numbers measure the same problems
            best_report = evaluate_stage(
                stages, recipe, "previous best", best["checkpoint"], outputs["eval_set"], recipe.evaluate.variants[0]
            )
        decision = stages.run(
            "retrain decision",
            record_retrain_decision,
            new_checkpoint,
            new_report,
            best and best["checkpoint"],
            best_report,
            METRIC,
        )
    message = what_ran(summary)
    if decision is None:
        message += f"; {new_checkpoint} is already the best checkpoint on record"
    run_logger().info("retrain: %s", message)
    result = stages.finish(outputs=outputs)
    result["stages"] = summary["stages"] + result["stages"]
    result["all_cached"] = all(s["cached"] for s in result["stages"])
    trained = [
        s["label"]
        for s in summary["stages"]
        if not s["cached"] and any(a.startswith("checkpoint-") for a in s["artifact_ids"])
    ]
    result["retrain"] = {
        "message": message,
        "new_checkpoints_from": trained,
        "new_checkpoint": new_checkpoint,
        "decision": decision,
        "best_checkpoint": best_on_record(store, lineage),
    }
    if "comparison" in summary:
        result["comparison"] = summary["comparison"]
    return result
