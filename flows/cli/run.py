"""``thinkflow run`` and ``thinkflow demo``: validate the recipe, reach Prefect, run the pipeline's flow, print its summary."""

from __future__ import annotations

import json
import sys

import typer

from flows.cli.output import fail, print_note


def run_pipeline(pipeline: str, config: str, overrides: list[str], as_json: bool) -> None:
    """Validate the recipe, reach Prefect, run the flow: a bad recipe is reported before anything starts."""
    from flows.runtime.pipelines import PIPELINES, pipeline_flow
    from flows.runtime.prefect_api import ensure_prefect_api
    from flows.runtime.stage_log import print_summary
    from flows.stage_sequences import checkpoint_label, evaluate_overrides, pipeline_recipe
    from storage import ArtifactStore
    from tasks.recipe import RecipeError

    if pipeline not in PIPELINES:
        fail(f"unknown pipeline {pipeline!r}; available: {', '.join(PIPELINES)}")
    try:
        recipe = pipeline_recipe(config, evaluate_overrides(overrides) if pipeline == "evaluate" else overrides)
        recipe.benchmarks()
        if pipeline == "evaluate":
            for checkpoint in recipe.evaluate.checkpoints:
                checkpoint_label(ArtifactStore(), checkpoint)
    except RecipeError as exc:
        fail(str(exc))
    flow = pipeline_flow(pipeline)
    ensure_prefect_api(say=print_note)
    summary = flow(config=config, overrides=overrides)
    if as_json:
        sys.stdout.write(json.dumps(summary) + "\n")
    else:
        print_summary(summary)


def demo(as_json: bool = typer.Option(False, "--json", help="print one JSON object instead of the table")) -> None:
    """Think-Anywhere on configs/default.yaml (SmolLM2-135M-Instruct, CPU)."""
    run_pipeline("think-anywhere", "configs/default.yaml", [], as_json)


def run(
    pipeline: str = typer.Argument(..., help="think-anywhere | thinking-midtraining | evaluate | retrain"),
    config: str = typer.Option(..., "--config", "-c", help="recipe YAML"),
    overrides: list[str] = typer.Option(
        [], "--set", help="override a recipe key: --set rl.max_steps=8; evaluate: --set checkpoints=[ID1,ID2]"
    ),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object instead of the table"),
) -> None:
    """Run a pipeline on a recipe; prints a summary table (stage, artifact, cached?, key metrics)."""
    run_pipeline(pipeline, config, overrides, as_json)
