"""``thinkflow run`` and ``thinkflow demo``: validate the recipe, reach Prefect, run the pipeline's flow, print its summary."""

from __future__ import annotations

import json
import signal
import sys
from contextlib import contextmanager

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
    with stopped_by_sigterm():
        try:
            summary = flow(config=config, overrides=overrides)
        except KeyboardInterrupt:
            stop_now()
    if as_json:
        sys.stdout.write(json.dumps(summary) + "\n")
    else:
        print_summary(summary)


@contextmanager
def stopped_by_sigterm():
    """SIGTERM stops a run the way Ctrl-C does: as KeyboardInterrupt in the main thread, so the training
    worker's process group is killed (tasks/training/launch.py), the sandbox pools close and Prefect's
    ephemeral server stops (both at exit), instead of the process vanishing and leaving them behind."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def stop_now() -> None:
    """Exit at once: the exit handlers (sandbox pools, Prefect's ephemeral server) run, then the process
    ends without waiting for stage threads still generating (a shard mid-batch would hold it for minutes).
    What finished is committed (artifacts and lineage are written whole or not at all); the same command resumes."""
    import atexit
    import os

    print_note(
        "stopped: the training worker, sandbox workers and Prefect's server are shut down; finished stages are "
        "stored, and the same command resumes from them"
    )
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130)


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
