"""Evaluate a checkpoint: pass@k on the configured benchmarks, thinking statistics, entropy at think
sites; one report artifact per (checkpoint, variant).

The benchmarks' problems form one ``eval-set`` dataset (the ids evaluated are its content, so its
id is part of each evaluation's cache key). A benchmark drawn from a training source keeps only the
problems the split holds out; other benchmarks (MBPP, LiveCodeBench files) are used whole, or a
subset of them. Variants say how the model is prompted: the thinking prompt, a plain prompt, an
empty thought pre-filled (NoThinking), or a cap on the upfront thought's tokens.
"""

from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from sandbox.config import SandboxConfig
from sandbox.pool import run_batch
from sandbox.verdicts import Job
from tasks.child_process import CHILD_LOGGER, call_in_fresh_process
from tasks.evaluation.scoring import per_benchmark, per_problem
from tasks.evaluation.think_stats import (
    entropy_at_think_sites_batched,
    response_features,
    summarize_entropy,
    summarize_thinking,
)
from tasks.generation import HFBackend, Sampling, chat_texts, generate_with_budget, open_backend
from tasks.problems.catalog import split_of
from tasks.progress import ProgressReport
from tasks.recipe import BenchmarkConfig, EvalGeneration, EvalScoring, EvalVariant, SandboxSection, SplitRule
from tasks.records import ProblemFormatError, chat_prompt, hashed_fraction, read_jsonl, write_jsonl
from tasks.stage_run import StageRun, stage
from tasks.thinking import extract_code


def subset_by_hash(problems: list[dict[str, Any]], limit: int, seed: int) -> list[dict[str, Any]]:
    """``limit`` problems chosen by hashed id: stable when the pool grows, independent of file order."""
    return sorted(problems, key=lambda problem: hashed_fraction(problem["id"], seed))[:limit]


def select_benchmark(pool: list[dict[str, Any]], bench: BenchmarkConfig, seed: int) -> list[dict[str, Any]]:
    """The benchmark's problems: exactly ``ids`` when given (each must be in the pool), else ``limit``
    of them by hashed id, else all; sorted by id."""
    if bench.ids:
        by_id = {p["id"]: p for p in pool}
        missing = [i for i in bench.ids if i not in by_id]
        if missing:
            raise ProblemFormatError(
                f"benchmark {bench.name}: ids not among its {len(pool)} evaluable problems: {missing[:5]}"
                + (" (a held-out benchmark excludes training problems)" if bench.held_out else "")
            )
        chosen = [by_id[i] for i in dict.fromkeys(bench.ids)]
    elif bench.limit:
        chosen = subset_by_hash(pool, bench.limit, seed)
    else:
        chosen = pool
    return sorted(chosen, key=lambda p: p["id"])


def benchmark_pool(problems: list[dict[str, Any]], origins: dict[str, str], bench: BenchmarkConfig, split: SplitRule):
    """The problems a benchmark may draw from: those loaded from its source, held out when asked."""
    pool = [p for p in problems if origins.get(p["id"]) == bench.source]
    if bench.held_out:
        pool = [p for p in pool if split_of(p["id"], split.eval_fraction, split.split_seed) == "eval"]
    return pool


@stage("eval_set", inputs={"training_problems": "training_problems_id", "benchmark_problems": "extra_problems_id"})
def build_eval_set(
    training_problems_id: str, extra_problems_id: str | None, benchmarks: list[BenchmarkConfig], split: SplitRule
) -> str:
    """One dataset of every benchmark's problems (field ``benchmark``) and ``ids.json`` per benchmark."""
    with StageRun() as run:
        chosen, ids, metrics = [], {}, {}
        for bench in benchmarks:
            label = "training_problems" if bench.held_out else "benchmark_problems"
            folder = run.input_path(label)
            origins = json.loads((folder / "ledger.json").read_text())["origins"]
            pool = benchmark_pool(read_jsonl(folder / "problems.jsonl"), origins, bench, split)
            selected = select_benchmark(pool, bench, split.split_seed)
            if not selected:
                raise ProblemFormatError(
                    f"benchmark {bench.name} ({bench.source}) has no problems to evaluate"
                    + (" after holding out the training split" if bench.held_out else "")
                )
            chosen += [{**p, "benchmark": bench.name} for p in selected]
            ids[bench.name] = [p["id"] for p in selected]
            metrics[f"problems/{bench.name}"] = len(selected)
            run.log.info(
                "benchmark %s: %d of %d problems (%s)",
                bench.name,
                len(selected),
                len(pool),
                "held out from training" if bench.held_out else "whole source",
            )
        staged = run.staging("eval-set")
        write_jsonl(staged / "problems.jsonl", chosen)
        (staged / "ids.json").write_text(json.dumps(ids, indent=1))
        metrics["problems"] = len(chosen)
        return run.output(
            "eval-set", staged, kind="dataset", name="eval-set", metadata={"benchmarks": list(ids)}, metrics=metrics
        )


def generate_samples(backend, problems: list[dict[str, Any]], variant: EvalVariant, sampling: Sampling):
    """(prompt texts without the prefill, responses per problem with the prefill)."""
    prompts = chat_texts(backend.tokenizer, [chat_prompt(p, variant.system_prompt) for p in problems])
    texts = [prompt + variant.prefill for prompt in prompts]
    if variant.think_budget:
        completions = generate_with_budget(backend, texts, sampling, variant.think_budget, variant.prefill)
    else:
        completions = backend.complete(texts, sampling)
    return prompts, [[variant.prefill + c for c in group] for group in completions]


def score_samples(
    problems: list[dict[str, Any]], responses: list[list[str]], sandbox_cfg: SandboxConfig
) -> list[dict[str, Any]]:
    """Run every sample's code; one row per sample. Infra errors stop the evaluation (never a 0)."""
    jobs = [
        Job(p["id"], f"sample-{i}", extract_code(r), p["tests"])
        for p, group in zip(problems, responses)
        for i, r in enumerate(group)
    ]
    verdicts = run_batch(
        jobs, sandbox_cfg, progress=ProgressReport("sandbox: evaluation samples", len(jobs), "solutions")
    )
    infra = [v for v in verdicts if v.status == "infra_error"]
    if infra:
        raise RuntimeError(
            f"{len(infra)} evaluation verdicts hit sandbox infrastructure errors, e.g. {infra[0].problem_id}: {infra[0].detail}"
        )
    flat = [(p, i, r) for p, group in zip(problems, responses) for i, r in enumerate(group)]
    return [
        {
            "benchmark": p["benchmark"],
            "problem_id": p["id"],
            "sample": i,
            "status": v.status,
            "tests_passed": v.passed,
            "tests_total": v.total,
            "detail": v.detail[:500],
            "response": r,
        }
        for (p, i, r), v in zip(flat, verdicts)
    ]


def add_entropy(rows: list[dict[str, Any]], prompts: dict[str, str], model, tokenizer) -> list[dict[str, list[float]]]:
    """Entropy at think sites and elsewhere for each sample with an inline block (kept on its row)."""
    scored = [row for row in rows if row["inline_blocks"]]
    progress = ProgressReport("entropy at think sites", len(scored), "responses")
    values = entropy_at_think_sites_batched(
        model, tokenizer, [(prompts[row["problem_id"]], row["response"]) for row in scored], progress=progress
    )
    for row in rows:
        row["entropy_think_sites"] = row["entropy_elsewhere_mean"] = None
    found = []
    for row, value in zip(scored, values):
        if value is None:
            continue
        found.append(value)
        row["entropy_think_sites"] = value["sites"]
        row["entropy_elsewhere_mean"] = (
            sum(value["elsewhere"]) / len(value["elsewhere"]) if value["elsewhere"] else None
        )
    return found


def summarize_evaluation(
    rows: list[dict[str, Any]], entropy: list[dict[str, list[float]]] | None, scoring: EvalScoring
) -> dict:
    problems = per_problem(rows, scoring.k)
    by_benchmark: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_benchmark[row["benchmark"]].append(row)
    return {
        "pass_at_k": per_benchmark(problems, scoring.k, scoring.bootstrap_resamples, scoring.confidence, seed=0),
        "thinking": summarize_thinking(rows),
        "thinking_per_benchmark": {name: summarize_thinking(group) for name, group in sorted(by_benchmark.items())},
        "entropy": summarize_entropy(entropy, scoring.bootstrap_resamples, scoring.confidence)
        if entropy is not None
        else None,
        "statuses": dict(sorted(Counter(r["status"] for r in rows).items())),
    }, problems


def report_metrics(summary: dict[str, Any], ks: list[int]) -> dict[str, float]:
    """The report's headline numbers for the lineage ``metrics`` table (no None: absent instead)."""
    metrics: dict[str, float] = {}
    for benchmark, scores in summary["pass_at_k"].items():
        suffix = "" if benchmark == "all" else f"/{benchmark}"
        metrics[f"problems{suffix}"] = scores["problems"]
        for k in ks:
            metrics[f"pass@{k}{suffix}"] = scores[f"pass@{k}"]
    thinking = summary["thinking"]
    metrics["samples"] = thinking["responses"]
    for name in ("upfront_think_rate", "inline_think_rate", "inline_blocks_per_response", "think_tokens_mean"):
        metrics[name] = thinking[name]
    for name in ("entropy_think_sites", "entropy_elsewhere", "think_sites", "entropy_ratio"):
        if summary["entropy"] and summary["entropy"][name] is not None:
            metrics[name] = summary["entropy"][name]
    return metrics


def evaluate_checkpoint(
    model_dir: Path,
    problems: list[dict[str, Any]],
    variant: EvalVariant,
    generation: EvalGeneration,
    scoring: EvalScoring,
    sandbox_cfg: SandboxConfig,
    dtype: str,
    log=None,
):
    """Per-sample rows, per-problem rows, the summary, and the raw entropy values (the evaluation stage
    calls it in a fresh process unless ``generation.process`` is "flow")."""
    from tasks.models import load_for_inference

    backend = open_backend(generation.backend, model_dir, dtype, generation.batch_size)
    sampling = Sampling(
        max_new_tokens=generation.max_new_tokens,
        n=generation.samples,
        temperature=generation.temperature,
        top_p=generation.top_p,
        seed=generation.seed,
        stop=tuple(generation.stop),
        round_tokens=generation.round_tokens,
    )
    prompts, responses = generate_samples(backend, problems, variant, sampling)
    (log or logging.getLogger(CHILD_LOGGER)).info(
        "generated %d samples for %d problems; running them in the sandbox", sum(map(len, responses)), len(problems)
    )
    rows = score_samples(problems, responses, sandbox_cfg)

    def count_tokens(text: str) -> int:
        return len(backend.tokenizer(text, add_special_tokens=False)["input_ids"])

    for row in rows:
        row.update(response_features(row["response"], count_tokens))
    entropy = None
    if scoring.entropy:  # the HF model scores its own replies; behind vLLM a float32 HF copy does
        tokenizer, model = (
            (backend.tokenizer, backend.model)
            if isinstance(backend, HFBackend)
            else load_for_inference(model_dir, "float32")
        )
        entropy = add_entropy(rows, dict(zip((p["id"] for p in problems), prompts)), model, tokenizer)
    summary, problem_rows = summarize_evaluation(rows, entropy, scoring)
    return rows, problem_rows, summary, entropy


def write_parquet(path: Path, rows: list[dict[str, Any]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)


@stage("evaluate", inputs={"model": "model_id", "eval_set": "eval_set_id"}, retries=1)
def evaluate_model(
    model_id: str,
    eval_set_id: str,
    variant: EvalVariant,
    generation: EvalGeneration,
    scoring: EvalScoring,
    sandbox: SandboxSection,
    dtype: str,
) -> str:
    """A report artifact: report.json (pass@k with intervals per benchmark, thinking statistics,
    entropy), samples.parquet (one row per sample), problems.parquet, entropy.json (raw values)."""
    with StageRun() as run:
        problems = read_jsonl(run.input_path("eval_set") / "problems.jsonl")
        run.log.info(
            "evaluating %s (%s) on %d problems, %d samples each",
            model_id,
            variant.name,
            len(problems),
            generation.samples,
        )
        arguments = (run.input_path("model"), problems, variant, generation, scoring, sandbox.sandbox_config(), dtype)
        if generation.process == "fresh":
            rows, problem_rows, summary, entropy = call_in_fresh_process(
                evaluate_checkpoint, *arguments, tag=f"evaluate {variant.name}"
            )
        else:
            rows, problem_rows, summary, entropy = evaluate_checkpoint(*arguments, run.log)
        metrics = report_metrics(summary, scoring.k)
        run.log.info("evaluated %s (%s): %s", model_id, variant.name, json.dumps(metrics))
        staged = run.staging("report")
        ids = json.loads((run.input_path("eval_set") / "ids.json").read_text())
        report = {
            "model": model_id,
            "variant": variant.to_json(),
            "eval_set": eval_set_id,
            "problem_ids": ids,
            "generation": generation.to_json(),
            "scoring": scoring.to_json(),
            **summary,
        }
        (staged / "report.json").write_text(json.dumps(report, indent=1))
        write_parquet(staged / "samples.parquet", rows)
        write_parquet(staged / "problems.parquet", problem_rows)
        (staged / "entropy.json").write_text(json.dumps(entropy or []))
        return run.output(
            "report",
            staged,
            kind="report",
            name=f"evaluation-{variant.name}",
            metadata={"model": model_id, "variant": variant.name},
            metrics=metrics,
        )
