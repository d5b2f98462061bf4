"""Evaluate and compare checkpoints: the benchmarks' problems → one evaluation per (checkpoint,
variant) → a comparison table with plots.

    thinkflow run evaluate --config configs/default.yaml --set checkpoints=[ID1,ID2]
    prefect deployment run 'evaluate/default' --param config=configs/default.yaml

The base model is always evaluated too (unless evaluate.evaluate_base_model is false), with the
recipe's baselines: a plain prompt, NoThinking, a thinking budget.
"""

from __future__ import annotations

from prefect import flow

from flows.runtime.stage_log import StageLog
from flows.stage_sequences import checkpoint_label, evaluate_checkpoints, evaluate_overrides, pipeline_recipe
from storage import ArtifactStore
from tasks.models import build_base_model
from tasks.problems.load import load_problems


@flow(name="evaluate")
def evaluate(config: str = "configs/default.yaml", overrides: list[str] | None = None) -> dict:
    recipe = pipeline_recipe(config, evaluate_overrides(overrides))
    stages = StageLog("evaluate", recipe.runner, recipe.tracking)

    store = ArtifactStore()
    checkpoints = [(checkpoint_label(store, c), c) for c in recipe.evaluate.checkpoints]
    if recipe.evaluate.evaluate_base_model or not checkpoints:
        checkpoints.insert(0, ("base", stages.run("base model", build_base_model, recipe.model)))
    training_problems = stages.run("problems", load_problems, recipe.problems, recipe.sandbox)
    evaluation = evaluate_checkpoints(stages, recipe, checkpoints, training_problems)
    return stages.finish(comparison=evaluation.comparison)
