"""Scheduled retraining: re-run a pipeline on its recipe and current problem data, then compare the
new checkpoint with the best one on record.

    prefect deployment run 'retrain/weekly' --param config=configs/default.yaml
    thinkflow run retrain --config configs/tiny.yaml

Caching does the noticing: problem loads are keyed on the bytes of the source files as well as the
recipe, and every later stage on the ids it reads, so new data or a changed recipe section re-runs
exactly the stages it reaches, and nothing changed means nothing re-runs (the summary says so).
When a new checkpoint comes out, the previous best (from the newest ``retrain-decision`` in
lineage) is evaluated on the same eval set (cached when it already was) and the comparison is
recorded as a new decision.
"""

from __future__ import annotations

from prefect import flow

from flows.evaluate import evaluate_stage, evaluation_stage
from flows.stage_log import StageLog
from storage import ArtifactStore, LineageStore
from tasks.recipe import RecipeError, load_recipe
from tasks.retrain import best_on_record, record_retrain_decision
from tasks.stage_run import run_logger

FINAL_CHECKPOINT = {"think-anywhere": ("rl", "rl"), "thinking-midtraining": ("rlvr (code)", "rlvr")}  # stage, evaluation label
METRIC = "pass@1"


def pipeline_run(pipeline: str, config: str, overrides: list[str] | None) -> dict:
    if pipeline == "thinking-midtraining":
        from flows.thinking_midtraining import thinking_midtraining

        return thinking_midtraining(config=config, overrides=overrides)
    from flows.think_anywhere import think_anywhere

    return think_anywhere(config=config, overrides=overrides)


def stage_artifact(summary: dict, stage: str) -> str:
    for result in summary["stages"]:
        if result["stage"] == stage:
            return result["artifact_ids"][0]
    raise RecipeError(f"the {summary['pipeline']} run has no stage {stage!r} (stages: {[s['stage'] for s in summary['stages']]})")


def what_ran(summary: dict) -> str:
    fresh = [s["stage"] for s in summary["stages"] if not s["cached"]]
    if not fresh:
        return (f"no new problem data and no recipe change: all {len(summary['stages'])} stages of {summary['pipeline']} "
                "came from the cache; no training ran")
    return f"{len(fresh)} of {len(summary['stages'])} stages ran anew: {', '.join(fresh)}"


@flow(name="retrain")
def retrain(config: str = "configs/default.yaml", overrides: list[str] | None = None, pipeline: str = "think-anywhere") -> dict:
    from flows.think_anywhere import resolve_config

    if pipeline not in FINAL_CHECKPOINT:
        raise RecipeError(f"retrain: pipeline {pipeline!r} is not one of {', '.join(FINAL_CHECKPOINT)}")
    recipe = load_recipe(resolve_config(config), overrides)
    store = ArtifactStore()
    lineage = LineageStore(store.lineage_path)
    best = best_on_record(store, lineage)  # before this run adds anything

    summary = pipeline_run(pipeline, config, overrides)  # a subflow: cached stages return at once
    stages = StageLog("retrain")
    final_stage, label = FINAL_CHECKPOINT[pipeline]
    variant = recipe.evaluate.variants[0]
    new_checkpoint, new_report = stage_artifact(summary, final_stage), stage_artifact(summary, evaluation_stage(label, variant))
    decision = None
    if best is None or best["checkpoint"] != new_checkpoint:
        best_report = None
        if best is not None:  # the incumbent on this run's eval set, so both numbers measure the same problems
            best_report = evaluate_stage(stages, recipe, "previous best", best["checkpoint"], stage_artifact(summary, "eval set"), variant)
        decision = stages.run("retrain decision", record_retrain_decision, new_checkpoint, new_report,
                              best and best["checkpoint"], best_report, METRIC)
    message = what_ran(summary)
    if decision is None:
        message += f"; {new_checkpoint} is already the best checkpoint on record"
    run_logger().info("retrain: %s", message)
    result = stages.finish()
    result["stages"] = summary["stages"] + result["stages"]
    result["all_cached"] = all(s["cached"] for s in result["stages"])
    trained = [s["stage"] for s in summary["stages"] if not s["cached"] and any(a.startswith("checkpoint-") for a in s["artifact_ids"])]
    result["retrain"] = {"message": message, "new_checkpoints_from": trained, "new_checkpoint": new_checkpoint,
                         "decision": decision, "best_checkpoint": best_on_record(store, lineage)}
    if "comparison" in summary:
        result["comparison"] = summary["comparison"]
    return result
