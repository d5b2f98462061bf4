"""Stage sequences more than one pipeline runs, each a run of named stages on a ``StageLog``.

The pipelines (``think_anywhere``, ``thinking_midtraining``, ``evaluate``, ``retrain``) import
these and nothing of each other. Every function passes artifact ids and the recipe's typed
sections; none holds logic of its own beyond choosing which stage comes next.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from flows.runtime.stage_log import StageLog
from storage import ArtifactStore
from tasks.evaluation.evaluate import build_eval_set, evaluate_model
from tasks.evaluation.report import compare_evaluations
from tasks.models import build_base_model
from tasks.problems.filters import filter_problems
from tasks.problems.load import load_problems, split_problems
from tasks.recipe import ModelConfig, Recipe, RecipeError, load_recipe
from tasks.stage_run import PROJECT_ROOT


def pipeline_recipe(config: str, overrides: list[str] | None) -> Recipe:
    """The recipe a flow runs on: ``config`` relative to the working directory, else to the project."""
    path = Path(config)
    recipe = load_recipe(path if path.exists() or path.is_absolute() else PROJECT_ROOT / path, overrides)
    resolved = recipe.with_resolved_precision()
    from prefect import get_run_logger
    from prefect.exceptions import MissingContextError

    from tasks.precision import resolve_dtype

    try:
        log = get_run_logger()
    except MissingContextError:  # validating a recipe before a flow starts
        return resolved
    log.info(
        "precision: model.torch_dtype %s -> %s (%s); training bf16 autocast: sft %s, rl %s",
        recipe.model.torch_dtype,
        resolved.model.torch_dtype,
        resolve_dtype(recipe.model.torch_dtype)[1],
        resolved.sft.bf16,
        resolved.rl.bf16,
    )
    return resolved


def annotator_model(stages: StageLog, recipe: Recipe, base_model: str) -> str | None:
    """The local model the annotator runs: the policy, another registry model, or none (an endpoint)."""
    if recipe.annotator.kind == "openai":
        return None
    if recipe.annotator.model == "policy":
        return base_model
    return stages.run("annotator model", build_base_model, ModelConfig(name=recipe.annotator.model))


def code_problems(stages: StageLog, recipe: Recipe, base_model: str) -> tuple[str, str]:
    """Problems loaded, filtered and split: (loaded problems id, train split id). Evaluation
    holds out by id from the loaded problems, so the eval split is not passed on."""
    loaded = stages.run("problems", load_problems, recipe.problems, recipe.sandbox)
    kept = stages.run(
        "filter",
        filter_problems,
        loaded,
        base_model,
        recipe.problems.filters,
        recipe.sandbox,
        recipe.prompts.system,
        recipe.model.torch_dtype,
    )
    train, _ = stages.run("split", split_problems, kept, recipe.problems.split_rule())
    return loaded, train


@dataclass
class Evaluation:
    """What an evaluation sequence made: the comparison, the eval set, one report per (label, variant)."""

    comparison: str
    eval_set: str
    reports: dict[tuple[str, str], str] = field(default_factory=dict)


def evaluation_stage(label: str, variant: str) -> str:
    return f"evaluate {label}" if variant == "thinking" else f"evaluate {label} ({variant})"


def eval_set_for(stages: StageLog, recipe: Recipe, training_problems: str) -> str:
    """The benchmarks' problems in one dataset: held out from ``training_problems`` or loaded whole."""
    extra_sources = recipe.benchmark_sources()
    extra = stages.run("benchmark problems", load_problems, extra_sources, recipe.sandbox) if extra_sources else None
    return stages.run(
        "eval set", build_eval_set, training_problems, extra, recipe.benchmarks(), recipe.problems.split_rule()
    )


def evaluate_stage(stages: StageLog, recipe: Recipe, label: str, model: str, eval_set: str, variant: str) -> str:
    """One checkpoint under one variant on the eval set, as the stage ``evaluate LABEL [(VARIANT)]``."""
    cfg = recipe.evaluate
    return stages.run(
        evaluation_stage(label, variant),
        evaluate_model,
        model,
        eval_set,
        cfg.variant(variant, recipe.prompts.system),
        cfg.generation(),
        cfg.scoring(),
        recipe.sandbox,
        recipe.model.torch_dtype,
    )


def evaluate_checkpoints(
    stages: StageLog, recipe: Recipe, checkpoints: list[tuple[str, str]], training_problems: str
) -> Evaluation:
    """Evaluate each (label, model id) under the recipe's variants, the base model under the
    baselines too, and compare them all."""
    eval_set = eval_set_for(stages, recipe, training_problems)
    reports: dict[tuple[str, str], str] = {}
    for position, (label, model) in enumerate(checkpoints):
        variants = list(recipe.evaluate.variants) + (
            list(recipe.evaluate.baselines) if position == 0 and label == "base" else []
        )
        for variant in dict.fromkeys(variants):
            reports[(label, variant)] = evaluate_stage(stages, recipe, label, model, eval_set, variant)
    comparison = stages.run("compare", compare_evaluations, list(reports.values()), [label for label, _ in reports])
    return Evaluation(comparison=comparison, eval_set=eval_set, reports=reports)


def checkpoint_label(store: ArtifactStore, checkpoint_id: str) -> str:
    """A checkpoint's label in reports (its name and a short id); the error says what is wrong with the id."""
    if not store.exists(checkpoint_id):
        raise RecipeError(f"checkpoint {checkpoint_id} is not in the artifact store {store.home}")
    artifact = store.get(checkpoint_id)
    if artifact.kind != "checkpoint":
        raise RecipeError(f"{checkpoint_id} is a {artifact.kind}, not a checkpoint")
    return f"{artifact.name} {checkpoint_id.rsplit('-', 1)[-1][:6]}"


def evaluate_overrides(overrides: list[str] | None) -> list[str]:
    """``--set checkpoints=[…]`` is the short form of ``--set evaluate.checkpoints=[…]``."""
    return [f"evaluate.{o}" if o.startswith("checkpoints=") else o for o in overrides or []]


def final_outputs(model: str, evaluation: Evaluation | None, label: str, recipe: Recipe) -> dict[str, str]:
    """The ids a caller (retrain, a script) needs from a pipeline's summary, by role rather than
    by display label: the final checkpoint, and its report and the eval set when it was evaluated."""
    outputs = {"final_checkpoint": model}
    if evaluation is not None:
        outputs["eval_set"] = evaluation.eval_set
        outputs["final_report"] = evaluation.reports[(label, recipe.evaluate.variants[0])]
    return outputs
