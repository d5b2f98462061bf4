"""``thinkflow verify``: solutions against their problems' tests in the sandbox (no Prefect involved)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import typer

from flows.cli.output import console, fail, print_note


def verify(
    problems_path: Path = typer.Argument(..., help="Problem JSONL"),
    solutions_path: Path = typer.Argument(..., help="Solution JSONL: problem_id, solution_id, text"),
    output: Path = typer.Option(..., "-o", "--output", help="Verdict JSONL"),
    backend: str = typer.Option("local", "--backend", help="local | docker"),
    workers: int = typer.Option(0, "--workers", min=0, help="sandbox workers (0: one per core)"),
    isolation: str = typer.Option("strict", "--isolation", help="strict | weak (weak: run without namespaces)"),
    timeout_s: float = typer.Option(6.0, "--timeout"),
    reward: str | None = typer.Option(
        None, "--reward", help="think_anywhere: also write each solution's reward and its terms"
    ),
    config: Path | None = typer.Option(
        None, "--config", help="with --reward: take the weights from this recipe's rl.reward"
    ),
) -> None:
    """Run solutions against their problems' tests in the sandbox; with ``--reward think_anywhere``
    each verdict row also carries ``reward`` and ``reward_terms`` (each term the reward weights, from the
    registry in tasks/training/reward_terms.py), computed by the function RL uses."""
    from sandbox.config import SandboxConfig, SandboxUnavailable
    from sandbox.pool import pool_for, run_batch
    from sandbox.verdicts import Job
    from tasks.problems.catalog import record_reference_tests
    from tasks.problems.sources import RowError, load_jsonl, read_rows
    from tasks.progress import ProgressReport
    from tasks.records import ProblemFormatError, write_jsonl
    from tasks.thinking import extract_code

    try:
        cfg = SandboxConfig(backend=backend, workers=workers, isolation=isolation, timeout_s=timeout_s)
    except ValueError as exc:
        fail(str(exc))
    section = reward_section(reward, config)
    try:
        loaded = load_jsonl(problems_path)
        if loaded.quarantined:
            fail(f"{len(loaded.quarantined)} problem rows cannot be used; the first: {loaded.quarantined[0].message}")
        problems = {p["id"]: p for p in loaded.problems}
        jobs, texts = [], []
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
            texts.append(solution["text"])
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
    rows = [v.to_dict() for v in verdicts]
    scored = score_rows(rows, texts, section, output) if section is not None else None
    write_jsonl(output, rows)
    counts = Counter(v.status for v in verdicts)
    console.print(f"{len(verdicts)} verdicts → {output}: " + ", ".join(f"{s}={n}" for s, n in sorted(counts.items())))
    if scored:
        from tasks.training.reward_terms import TERMS

        console.print(
            f"{reward} reward: mean {sum(r['reward'] for r in rows) / len(rows):.4f} over {len(rows)} solutions"
        )
        console.print(
            "terms (weight × mean): "
            + ", ".join(
                f"{TERMS[name].label or name} ({name}) {weight:g} × {sum(r['reward_terms'][name] for r in rows) / len(rows):.3f}"
                for name, weight in section.weights.items()
            )
        )


def reward_section(reward: str | None, config: Path | None):
    """The reward's settings: the recipe's ``rl.reward`` with --config (its weights and term
    modules), else the registered defaults."""
    from tasks.recipe import RecipeError, RewardSection, load_recipe

    if reward is None:
        if config is not None:
            fail("--config only sets the weights of --reward; add --reward think_anywhere")
        return None
    if reward != "think_anywhere":
        fail(
            f"--reward {reward!r}: verify scores code solutions with think_anywhere only (the other rewards judge text or math)"
        )
    if config is None:
        return RewardSection()
    try:
        section = load_recipe(config).rl.reward
    except RecipeError as exc:
        fail(str(exc))
    if section.name != "think_anywhere":
        fail(f"{config}: rl.reward is {section.name!r}, not think_anywhere")
    return section


def score_rows(rows: list[dict], texts: list[str], section, output: Path) -> bool:
    """Add ``reward`` and ``reward_terms`` to each verdict row. An infrastructure error is never
    scored: the verdicts are written without rewards and the command fails, naming the solution."""
    from tasks.records import write_jsonl
    from tasks.training.rewards import UnscorableVerdict, think_anywhere_scores

    try:
        scores = think_anywhere_scores(texts, rows, section.weights, section.modules)
    except UnscorableVerdict as exc:
        write_jsonl(output, rows)
        fail(f"{exc}; verdicts written to {output} without rewards: run it again")
    for row, score in zip(rows, scores):
        row["reward"] = score.pop("reward")
        row["reward_terms"] = score
    return True
