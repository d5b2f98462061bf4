"""Evaluate and compare checkpoints: the benchmarks' problems → one evaluation per (checkpoint,
variant) → a comparison table with plots.

    thinkflow run evaluate --config configs/default.yaml --set checkpoints=[ID1,ID2]
    prefect deployment run 'evaluate/default' --param config=configs/default.yaml

The base model is always evaluated too (unless evaluate.evaluate_base_model is false), with the
recipe's baselines: a plain prompt, NoThinking, a thinking budget. The think-anywhere flow ends by
calling ``evaluate_checkpoints`` on its base, SFT and RL models.
"""

from __future__ import annotations

from prefect import flow

from flows.stage_log import StageLog
from storage import ArtifactStore
from tasks.eval_report import compare_evaluations
from tasks.evaluation import build_eval_set, evaluate_model
from tasks.models import build_base_model
from tasks.problems import load_problems
from tasks.recipe import RecipeError, load_recipe


def evaluate_checkpoints(stages: StageLog, recipe, checkpoints: list[tuple[str, str]], training_problems: str) -> str:
    """Evaluate each (label, model id) under the recipe's variants, the first (the base model) under
    the baselines too, and compare them all; returns the comparison artifact id."""
    cfg, sandbox = recipe.evaluate, recipe.sandbox.as_key()
    extra_sources = recipe.benchmark_sources_key()
    extra = stages.run("benchmark problems", load_problems, extra_sources, sandbox) if extra_sources else None
    split = {"eval_fraction": recipe.problems.eval_fraction, "split_seed": recipe.problems.split_seed}
    eval_set = stages.run("eval set", build_eval_set, training_problems, extra, recipe.benchmarks(), split)
    reports, labels = [], []
    for position, (label, model) in enumerate(checkpoints):
        variants = list(cfg.variants) + (list(cfg.baselines) if position == 0 and label == "base" else [])
        for variant in dict.fromkeys(variants):
            reports.append(evaluate_stage(stages, recipe, label, model, eval_set, variant))
            labels.append(label)
    return stages.run("compare", compare_evaluations, reports, labels)


def evaluation_stage(label: str, variant: str) -> str:
    return f"evaluate {label}" if variant == "thinking" else f"evaluate {label} ({variant})"


def evaluate_stage(stages: StageLog, recipe, label: str, model: str, eval_set: str, variant: str) -> str:
    """One checkpoint under one variant on the eval set, as the stage ``evaluate LABEL [(VARIANT)]``."""
    cfg = recipe.evaluate
    return stages.run(evaluation_stage(label, variant), evaluate_model, model, eval_set, cfg.variant_key(variant, recipe.prompts.system),
                      cfg.generation_key(), cfg.scoring_key(), recipe.sandbox.as_key(), recipe.model.torch_dtype)


def checkpoint_label(store: ArtifactStore, checkpoint_id: str) -> str:
    if not store.exists(checkpoint_id):
        raise RecipeError(f"checkpoint {checkpoint_id} is not in the artifact store {store.home}")
    artifact = store.get(checkpoint_id)
    if artifact.kind != "checkpoint":
        raise RecipeError(f"{checkpoint_id} is a {artifact.kind}, not a checkpoint")
    return f"{artifact.name} {checkpoint_id.rsplit('-', 1)[-1][:6]}"


def evaluate_overrides(overrides: list[str] | None) -> list[str]:
    """``--set checkpoints=[…]`` is the short form of ``--set evaluate.checkpoints=[…]``."""
    return [f"evaluate.{o}" if o.startswith("checkpoints=") else o for o in overrides or []]


@flow(name="evaluate")
def evaluate(config: str = "configs/default.yaml", overrides: list[str] | None = None) -> dict:
    from flows.think_anywhere import resolve_config

    overrides = evaluate_overrides(overrides)
    recipe = load_recipe(resolve_config(config), overrides)
    store = ArtifactStore()
    stages = StageLog("evaluate")
    checkpoints = [(checkpoint_label(store, c), c) for c in recipe.evaluate.checkpoints]
    if recipe.evaluate.evaluate_base_model or not checkpoints:
        checkpoints.insert(0, ("base", stages.run("base model", build_base_model, recipe.model.as_key())))
    training_problems = stages.run("problems", load_problems, recipe.problems.as_key(), recipe.sandbox.as_key())
    comparison = evaluate_checkpoints(stages, recipe, checkpoints, training_problems)
    return stages.finish(comparison=comparison)
