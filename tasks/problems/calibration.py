"""Calibration: how often the policy RL starts from solves each candidate problem, and the RL set it implies.

GRPO learns from a group only when its rewards differ; with a binary correctness term that needs a
pass rate strictly between 0 and 1, and the expected signal grows with p(1 − p). So before RL the
policy (the SFT model: RL starts from it, not from the base) samples every candidate ``samples``
times at the RL temperature and completion cap, each sample runs in the sandbox, and the problems
whose pass rate lies in the band are the RL set. The table (per difficulty: problems, mean pass
rate, share of problems with variance, share in the band) is part of the artifact, so "why did
RL train on these?" has a measured answer.

A sandbox infrastructure error stops the stage naming the problem; it is never a failed sample.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from typing import Any

from sandbox.pool import run_batch
from sandbox.verdicts import Job
from tasks.progress import ProgressReport
from tasks.recipe import CalibrationConfig, RLDraw, SandboxSection
from tasks.records import chat_prompt, read_jsonl, write_jsonl
from tasks.stage_run import StageRun, stage


def rl_candidates(problems: list[dict[str, Any]], rl: RLDraw, limit: int | None) -> list[dict[str, Any]]:
    """The train problems RL may draw (``rl.sources``), in RL's seeded order, the first ``limit``."""
    import random

    if rl.sources is not None:
        problems = [p for p in problems if p["source"] in rl.sources]
        if not problems:
            raise ValueError(f"rl.sources {rl.sources}: the train split has no problems from them")
    if rl.shuffle_seed is not None:
        problems = sorted(problems, key=lambda p: p["id"])
        random.Random(rl.shuffle_seed).shuffle(problems)
    return problems[:limit] if limit else problems


def pass_rates(problems: list[dict[str, Any]], replies: list[list[str]], sandbox_cfg) -> list[dict[str, Any]]:
    """One row per problem: its difficulty, how many of its samples passed, the pass rate."""
    from tasks.thinking import extract_code

    jobs = [
        Job(p["id"], f"calibration-{k}", extract_code(text), p["tests"])
        for p, texts in zip(problems, replies)
        for k, text in enumerate(texts)
    ]
    verdicts = run_batch(
        jobs, sandbox_cfg, progress=ProgressReport("sandbox: calibration samples", len(jobs), "solutions")
    )
    rows, position = [], 0
    for problem, texts in zip(problems, replies):
        mine = verdicts[position : position + len(texts)]
        position += len(texts)
        broken = [v for v in mine if v.status == "infra_error"]
        if broken:
            raise RuntimeError(
                f"{problem['id']}: the sandbox could not run {broken[0].solution_id}: {broken[0].detail}"
            )
        passed = sum(v.status == "passed" for v in mine)
        rows.append(
            {
                "problem_id": problem["id"],
                "difficulty": problem.get("difficulty") or "unrated",
                "samples": len(texts),
                "passed": passed,
                "pass_rate": passed / len(texts),
            }
        )
    return rows


def in_band(row: dict[str, Any], cfg: CalibrationConfig) -> bool:
    return cfg.low <= row["pass_rate"] <= cfg.high


def calibration_table(rows: list[dict[str, Any]], cfg: CalibrationConfig) -> list[dict[str, Any]]:
    """Per difficulty (and ``all``): problems, mean pass rate, share with some but not all samples
    passing (a group with correctness variance), share in the band."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[row["difficulty"]].append(row)
    table = []
    for name, members in sorted(groups.items()) + [("all", rows)]:
        table.append(
            {
                "difficulty": name,
                "problems": len(members),
                "pass_rate": statistics.fmean(r["pass_rate"] for r in members),
                "with_variance": sum(0 < r["passed"] < r["samples"] for r in members) / len(members),
                "in_band": sum(in_band(r, cfg) for r in members) / len(members),
                "kept": sum(in_band(r, cfg) for r in members),
            }
        )
    return table


def calibration_markdown(
    table: list[dict[str, Any]], cfg: CalibrationConfig, temperature: float, policy: str, samples: int | None = None
) -> str:
    lines = [
        f"Calibration of {policy}: {samples or cfg.samples} samples per problem at temperature {temperature}; "
        f"RL set = pass rate in [{cfg.low}, {cfg.high}]",
        "",
        "| difficulty | problems | mean pass rate | groups with variance | in band | kept |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['difficulty']} | {r['problems']} | {r['pass_rate']:.3f} | {r['with_variance']:.2f} | {r['in_band']:.2f} | "
        f"{r['kept']} |"
        for r in table
    ]
    return "\n".join(lines) + "\n"


def sampled_pass_rates(
    policy_dir,
    problems: list[dict[str, Any]],
    cfg: CalibrationConfig,
    rl: RLDraw,
    sandbox: SandboxSection,
    system_prompt: str,
    dtype: str,
) -> list[dict[str, Any]]:
    """``pass_rates`` of one policy: ``cfg.samples`` replies per problem at the RL temperature and cap."""
    from tasks.generation import sample_replies

    replies = sample_replies(
        policy_dir,
        [chat_prompt(p, system_prompt) for p in problems],
        samples=cfg.samples,
        max_new_tokens=rl.max_completion_length,
        temperature=rl.temperature,
        seed=cfg.seed,
        batch_size=cfg.batch_size,
        dtype=dtype,
    )
    return pass_rates(problems, replies, sandbox.sandbox_config())


def table_metrics(table: list[dict[str, Any]], prefix: str = "") -> dict[str, float]:
    metrics = {}
    for row in table:
        label = prefix + row["difficulty"].replace(" ", "_")
        metrics.update(
            {
                f"{label}/pass_rate": row["pass_rate"],
                f"{label}/with_variance": row["with_variance"],
                f"{label}/in_band": row["in_band"],
            }
        )
    return metrics


def no_problem_kept(problems: list[dict[str, Any]], cfg: CalibrationConfig, table: list[dict[str, Any]]) -> ValueError:
    return ValueError(
        f"calibration kept no problem: none of {len(problems)} has a pass rate in [{cfg.low}, {cfg.high}] "
        f"({json.dumps(table[-1])}); widen the band, raise calibration.limit, or use easier problems"
    )


def write_rl_set(
    run: StageRun, kept: list[dict[str, Any]], rows: list[dict[str, Any]], markdown: str, table: Any
) -> Any:
    staged = run.staging("rl-problems")
    write_jsonl(staged / "problems.jsonl", kept)
    write_jsonl(staged / "calibration.jsonl", rows)
    (staged / "calibration.md").write_text(markdown)
    (staged / "calibration.json").write_text(json.dumps(table, indent=1))
    return staged


@stage("calibrate", inputs={"policy": "policy_id", "problems": "problems_id"}, retries=1)
def calibrate_rl_problems(
    policy_id: str,
    problems_id: str,
    calibration: CalibrationConfig,
    rl: RLDraw,
    sandbox: SandboxSection,
    system_prompt: str,
    dtype: str,
) -> str:
    """The RL set (problems.jsonl) and the calibration behind it (calibration.jsonl, calibration.md)."""
    cfg = calibration
    with StageRun() as run:
        problems = rl_candidates(read_jsonl(run.input_path("problems") / "problems.jsonl"), rl, cfg.limit)
        rows = sampled_pass_rates(run.input_path("policy"), problems, cfg, rl, sandbox, system_prompt, dtype)
        table = calibration_table(rows, cfg)
        kept = [p for p, row in zip(problems, rows) if in_band(row, cfg)]
        markdown = calibration_markdown(table, cfg, rl.temperature, "the RL starting policy")
        run.log.info("calibration:\n%s", markdown)
        if not kept:
            raise no_problem_kept(problems, cfg, table)
        staged = write_rl_set(run, kept, rows, markdown, table)
        metrics = {"candidates": len(problems), "kept": len(kept), **table_metrics(table)}
        return run.output("problems", staged, kind="dataset", name="rl-problems", metrics=metrics)


def pooled_rows(rows_by_policy: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per problem, the samples and passes of every policy added up: the pass rate they share."""
    pooled = []
    for per_problem in zip(*rows_by_policy):
        samples, passed = sum(r["samples"] for r in per_problem), sum(r["passed"] for r in per_problem)
        pooled.append({**per_problem[0], "samples": samples, "passed": passed, "pass_rate": passed / samples})
    return pooled


@stage("calibrate_arms", inputs={"problems": "problems_id", "policy_": "policy_ids"}, retries=1)
def calibrate_rl_problems_for_arms(
    policy_ids: list[str],
    labels: list[str],
    problems_id: str,
    calibration: CalibrationConfig,
    rl: RLDraw,
    sandbox: SandboxSection,
    system_prompt: str,
    dtype: str,
) -> str:
    """One RL set for several starting policies that must train on the same problems (the RLVR arms
    of Thinking Mid-training). Every policy samples every candidate; a problem is kept when the pass
    rate pooled over the policies lies in the band, so no arm's starting point chooses the set. The
    artifact holds each policy's table (its pass rate before RL) and the pooled one."""
    if len(policy_ids) != len(labels) or not policy_ids:
        raise ValueError(f"calibrate-arms needs one label per policy: {len(policy_ids)} policies, labels {labels}")
    cfg = calibration
    with StageRun() as run:
        problems = rl_candidates(read_jsonl(run.input_path("problems") / "problems.jsonl"), rl, cfg.limit)
        rows_by_policy = []
        for index, label in enumerate(labels):
            rows_by_policy.append(
                sampled_pass_rates(run.input_path(f"policy_{index}"), problems, cfg, rl, sandbox, system_prompt, dtype)
            )
            run.log.info(
                "calibration of %s: mean pass rate %.3f over %d problems",
                label,
                statistics.fmean(r["pass_rate"] for r in rows_by_policy[-1]),
                len(problems),
            )
        pooled = pooled_rows(rows_by_policy)
        tables = {label: calibration_table(rows, cfg) for label, rows in zip(labels, rows_by_policy)}
        tables["pooled"] = calibration_table(pooled, cfg)
        kept = [p for p, row in zip(problems, pooled) if in_band(row, cfg)]
        markdown = "\n".join(
            calibration_markdown(table, cfg, rl.temperature, f"arm {label}")
            for label, table in tables.items()
            if label != "pooled"
        )
        markdown += "\n" + calibration_markdown(
            tables["pooled"], cfg, rl.temperature, "the arms pooled (the RL set's rule)", cfg.samples * len(labels)
        )
        run.log.info("calibration of the RL starting points:\n%s", markdown)
        if not kept:
            raise no_problem_kept(problems, cfg, tables["pooled"])
        rows = [{**row, "policy": label} for label, policy_rows in zip(labels, rows_by_policy) for row in policy_rows]
        staged = write_rl_set(run, kept, rows, markdown, tables)
        metrics = {"candidates": len(problems), "kept": len(kept)}
        for label, table in tables.items():
            metrics.update(table_metrics(table, f"{label}/"))
        return run.output("problems", staged, kind="dataset", name="rl-problems", metrics=metrics)
