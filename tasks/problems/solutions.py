"""Solutions for problems that come without one, by rejection sampling.

Skywork-OR1 and LiveCodeBench rows carry tests but no reference solution, so they could never
reach the cold-start set. For each such train problem the stage samples ``samples`` replies from
the policy (or the annotator), runs each reply's code against the problem's tests in the sandbox,
and keeps the first that passes as the problem's ``reference`` (``reference_origin:
"rejection_sampled"``). Every problem it sampled gets ``sampled_pass_rate`` (passing / samples),
solved or not, and ``policy_solution`` (the first passing sample, given reference or not: the
cold start's ``targets: policy`` teaches the format on the policy's own code), and every sample's verdict is written to ``samples.jsonl``; a problem that no
sample solved stays in the split without a reference (RL can still use it).

A sandbox infrastructure error stops the stage naming the problem: it is never counted as a
failed sample. Sampling runs one cached task per shard of ``shard_size`` problems, so an
interrupted run redoes only the shards that had not finished.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sandbox.config import SandboxConfig
from sandbox.pool import run_batch
from sandbox.verdicts import Job
from tasks.progress import ProgressReport
from tasks.recipe import AnnotatorConfig, SandboxSection, SolutionsConfig
from tasks.records import chat_prompt, read_jsonl, write_jsonl
from tasks.stage_run import StageRun, shards_for, stage

Sampler = Callable[[list[list[dict[str, str]]], int], list[list[str]]]  # (conversations, k) -> k replies each


def sampling_targets(problems: list[dict[str, Any]], cfg: SolutionsConfig) -> list[dict[str, Any]]:
    """The problems the stage samples for, in split order (the first ``limit`` of them when set)."""
    if cfg.problems == "none":
        return []
    targets = list(problems) if cfg.problems == "all" else [p for p in problems if not p.get("reference")]
    return targets[: cfg.limit] if cfg.limit else targets


def shard_of(problems: list[dict[str, Any]], cfg: SolutionsConfig, shard: int) -> list[dict[str, Any]]:
    return sampling_targets(problems, cfg)[shard * cfg.shard_size : (shard + 1) * cfg.shard_size]


def rejection_sample(
    problems: list[dict[str, Any]],
    sampler: Sampler,
    cfg: SolutionsConfig,
    sandbox_cfg: SandboxConfig,
    system_prompt: str,
) -> list[dict[str, Any]]:
    """One result per problem: ``{problem_id, samples: [{status, passed, total, detail, code}], pass_rate,
    solution}`` where ``solution`` is the first passing sample's code (or None)."""
    from tasks.thinking import extract_code

    if not problems:
        return []
    replies = sampler([chat_prompt(p, system_prompt) for p in problems], cfg.samples)
    if len(replies) != len(problems) or any(len(r) != cfg.samples for r in replies):
        raise RuntimeError(
            f"the sampler gave {[len(r) for r in replies]} replies for {len(problems)} problems × {cfg.samples}"
        )
    codes = [[extract_code(text) for text in texts] for texts in replies]
    jobs = [
        Job(p["id"], f"sample-{k}", code, p["tests"]) for p, mine in zip(problems, codes) for k, code in enumerate(mine)
    ]
    verdicts = run_batch(
        jobs, sandbox_cfg, progress=ProgressReport("sandbox: sampled solutions", len(jobs), "solutions")
    )
    results = []
    for index, problem in enumerate(problems):
        mine = verdicts[index * cfg.samples : (index + 1) * cfg.samples]
        broken = [v for v in mine if v.status == "infra_error"]
        if broken:
            raise RuntimeError(
                f"{problem['id']}: the sandbox could not run {broken[0].solution_id}: {broken[0].detail}"
            )
        samples = [
            {"status": v.status, "passed": v.passed, "total": v.total, "detail": v.detail, "code": code}
            for v, code in zip(mine, codes[index])
        ]
        passing = [s["code"] for s in samples if s["status"] == "passed"]
        results.append(
            {
                "problem_id": problem["id"],
                "samples": samples,
                "pass_rate": len(passing) / cfg.samples,
                "solution": passing[0] if passing else None,
            }
        )
    return results


def attach_solutions(
    problems: list[dict[str, Any]], results: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """The problems with each sampled problem's pass rate recorded and, where a sample passed and
    the problem had no reference, that sample as its reference. Returns (problems, metrics)."""
    by_id = {r["problem_id"]: r for r in results}
    unknown = set(by_id) - {p["id"] for p in problems}
    if unknown:
        raise RuntimeError(f"sampled results for problems not in the split: {sorted(unknown)[:5]}")
    out, solved = [], 0
    for problem in problems:
        result = by_id.get(problem["id"])
        if result is None:
            out.append(problem)
            continue
        meta = {**problem.get("meta", {}), "sampled_pass_rate": result["pass_rate"]}
        if result["solution"]:  # the policy's own correct code: what a cold start can teach the format on
            meta["policy_solution"] = result["solution"]
        problem = {**problem, "meta": meta}
        if result["solution"] and not problem.get("reference"):
            problem.update(reference=result["solution"], reference_origin="rejection_sampled")
            solved += 1
        out.append(problem)
    samples = sum(len(r["samples"]) for r in results)
    metrics = {
        "problems": len(out),
        "sampled_problems": len(results),
        "samples": samples,
        "solved": solved,
        "pass_rate_mean": sum(r["pass_rate"] for r in results) / len(results) if results else 0.0,
        "with_reference": sum(bool(p.get("reference")) for p in out),
        "with_policy_solution": sum(r["solution"] is not None for r in results),  # given reference or not
    }
    return out, metrics


def solution_shards(problems_id: str, cfg: SolutionsConfig) -> int:
    """How many shards the sampling stage runs for this split."""
    from storage import ArtifactStore

    problems = read_jsonl(ArtifactStore().path(problems_id) / "problems.jsonl")
    return shards_for(len(sampling_targets(problems, cfg)), cfg.shard_size)


def make_sampler(cfg: SolutionsConfig, policy_dir, annotator, dtype: str) -> Sampler:
    from tasks.generation import sample_replies

    if cfg.sampler == "annotator":
        return lambda conversations, k: annotator.sample(
            conversations, k, cfg.max_new_tokens, cfg.temperature, cfg.seed
        )
    return lambda conversations, k: sample_replies(
        policy_dir,
        conversations,
        samples=k,
        max_new_tokens=cfg.max_new_tokens,
        temperature=cfg.temperature,
        seed=cfg.seed,
        dtype=dtype,
    )


# -- Prefect tasks ---------------------------------------------------------------------------------


@stage(
    "sample_solutions_shard",
    inputs={"problems": "problems_id", "policy": "policy_id", "annotator": "annotator_model_id"},
    retries=2,
    retry_delay_seconds=[5, 30],
)
def sample_solutions_shard(
    problems_id: str,
    shard: int,
    policy_id: str,
    annotator_model_id: str | None,
    annotator: AnnotatorConfig | None,
    solutions: SolutionsConfig,
    sandbox: SandboxSection,
    system_prompt: str,
    dtype: str,
) -> str:
    """One shard's samples and verdicts (samples.jsonl), cached on its own."""
    from tasks.annotators import make_annotator

    cfg, annotator_cfg = solutions, annotator
    if cfg.sampler == "annotator" and annotator_cfg is None:
        raise ValueError("solutions.sampler is annotator: the stage needs the annotator's settings")
    with StageRun() as run:
        problems = shard_of(read_jsonl(run.input_path("problems") / "problems.jsonl"), cfg, shard)
        annotator = None
        if cfg.sampler == "annotator":
            model_dir = run.input_path("annotator") if "annotator" in run.inputs else None
            annotator = make_annotator(annotator_cfg, model_dir, run.store.home / "cache" / "annotator", dtype)
        sampler = make_sampler(cfg, run.input_path("policy"), annotator, dtype)
        results = rejection_sample(problems, sampler, cfg, sandbox.sandbox_config(), system_prompt)
        staged = run.staging(f"shard{shard}")
        write_jsonl(staged / "samples.jsonl", results)
        solved = sum(r["solution"] is not None for r in results)
        run.log.info(
            "solutions shard %d: %d problems × %d samples, %d solved", shard, len(results), cfg.samples, solved
        )
        return run.output(
            "samples",
            staged,
            kind="dataset",
            name=f"solution-samples-{shard}",
            metrics={"sampled_problems": len(results), "solved": solved},
        )


@stage("attach_solutions", inputs={"problems": "problems_id", "shard": "shard_ids"})
def attach_sampled_solutions(problems_id: str, shard_ids: list[str], solutions: SolutionsConfig) -> str:
    """The split with rejection-sampled references and pass rates attached (a new problems artifact)."""
    cfg = solutions
    with StageRun() as run:
        problems = read_jsonl(run.input_path("problems") / "problems.jsonl")
        results = [
            row for i in range(len(shard_ids)) for row in read_jsonl(run.input_path(f"shard{i}") / "samples.jsonl")
        ]
        expected = [p["id"] for p in sampling_targets(problems, cfg)]
        if [r["problem_id"] for r in results] != expected:
            raise RuntimeError(f"{len(expected)} problems to sample for but the shards hold {len(results)} results")
        updated, metrics = attach_solutions(problems, results)
        run.log.info(
            "rejection sampling: %d problems sampled, %d with a passing sample (%d of them had no reference), "
            "mean pass rate %.3f",
            metrics["sampled_problems"],
            metrics["with_policy_solution"],
            metrics["solved"],
            metrics["pass_rate_mean"],
        )
        staged = run.staging("problems")
        write_jsonl(staged / "problems.jsonl", updated)
        write_jsonl(staged / "samples.jsonl", results)
        return run.output("problems", staged, kind="dataset", name="problems-train-solved", metrics=metrics)
