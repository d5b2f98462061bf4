"""Evaluate a checkpoint: greedy pass@1 on the held-out problems, one verdict per problem.

(pass@k with sampling, the four benchmarks, think statistics and entropy at think sites: issue 6.)
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from prefect import task

from sandbox import Job, SandboxConfig, run_batch
from tasks.problem_schema import chat_prompt, read_jsonl, write_jsonl
from tasks.stage_run import StageRun, retry_transient, stage_cache
from tasks.thinking import extract_code, has_inline_thought_in_statement, has_upfront_think


def select_eval_problems(problems: list[dict[str, Any]], limit_per_source: int | None) -> list[dict[str, Any]]:
    if limit_per_source is None:
        return problems
    taken: Counter = Counter()
    chosen = []
    for problem in problems:
        if taken[problem["source"]] < limit_per_source:
            chosen.append(problem)
            taken[problem["source"]] += 1
    return chosen


def summarize(rows: list[dict[str, Any]]) -> dict[str, float]:
    """pass@1 overall and per source, status counts, and how often the model thinks."""
    by_source: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_source[row["source"]].append(row)
    summary: dict[str, float] = {"problems": len(rows)}
    if rows:
        summary["pass@1"] = sum(r["status"] == "passed" for r in rows) / len(rows)
        summary["upfront_think_rate"] = sum(r["upfront_think"] for r in rows) / len(rows)
        summary["inline_think_rate"] = sum(r["inline_think"] for r in rows) / len(rows)
    for source, group in sorted(by_source.items()):
        summary[f"pass@1/{source}"] = sum(r["status"] == "passed" for r in group) / len(group)
        summary[f"problems/{source}"] = len(group)
    for status, count in Counter(r["status"] for r in rows).items():
        summary[f"status/{status}"] = count
    return summary


def evaluate_checkpoint(
    model_dir: Path, problems: list[dict[str, Any]], eval_cfg: dict[str, Any], sandbox_cfg: SandboxConfig,
    system_prompt: str, dtype: str,
) -> list[dict[str, Any]]:
    from tasks.generation import generate_replies

    replies = generate_replies(
        model_dir, [chat_prompt(p, system_prompt) for p in problems],
        max_new_tokens=eval_cfg["max_new_tokens"], batch_size=eval_cfg["batch_size"], dtype=dtype,
    )
    jobs = [Job(p["id"], "greedy", extract_code(reply), p["tests"]) for p, reply in zip(problems, replies)]
    verdicts = run_batch(jobs, sandbox_cfg)
    infra = [v for v in verdicts if v.status == "infra_error"]
    if infra:
        raise RuntimeError(f"{len(infra)} evaluation verdicts hit sandbox infrastructure errors, e.g. {infra[0].detail}")
    return [
        {**verdict.to_dict(), "source": problem["source"], "response": reply,
         "upfront_think": has_upfront_think(reply), "inline_think": has_inline_thought_in_statement(reply)}
        for problem, reply, verdict in zip(problems, replies, verdicts)
    ]


@task(name="evaluate", retry_condition_fn=retry_transient, retries=1, retry_delay_seconds=10, cache_policy=stage_cache("tasks.generation", "tasks.thinking", "sandbox"), persist_result=True)
def evaluate_model(model_id: str, eval_problems_id: str, eval_cfg: dict, sandbox_cfg: dict, system_prompt: str, dtype: str) -> str:
    """A report artifact: summary.json (pass@1 per source) and verdicts.jsonl (one row per problem)."""
    inputs = {"model": model_id, "problems": eval_problems_id}
    params = {"evaluate": eval_cfg, "sandbox": sandbox_cfg, "system_prompt": system_prompt, "dtype": dtype}
    with StageRun("evaluate", inputs=inputs, params=params, code_modules=("tasks.evaluation",)) as run:
        problems = select_eval_problems(read_jsonl(run.input_path("problems") / "problems.jsonl"), eval_cfg["limit_per_source"])
        run.log.info("generating greedy replies for %d problems", len(problems))
        rows = evaluate_checkpoint(run.input_path("model"), problems, eval_cfg, SandboxConfig(**sandbox_cfg), system_prompt, dtype)
        summary = summarize(rows)
        run.log.info("evaluated %s: %s", model_id, json.dumps(summary))
        staged = run.staging("report")
        write_jsonl(staged / "verdicts.jsonl", rows)
        (staged / "summary.json").write_text(json.dumps({"model": model_id, **summary}, indent=2))
        return run.output("report", staged, kind="report", name="evaluation", metadata={"model": model_id}, metrics=summary)
