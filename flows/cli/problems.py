"""``thinkflow problems load``: a source into Problem JSONL, with its quarantine."""

from __future__ import annotations

from pathlib import Path

import typer

from flows.cli.output import console, fail

problems_app = typer.Typer(no_args_is_help=True, help="Load problem sources into Problem JSONL.")


@problems_app.command("load")
def problems_load(
    source: str = typer.Argument(
        ...,
        help="leetcode | humaneval | functions[:split=train,seed=0,count=500,ops=1-3] | skywork:PATH | mbpp:PATH | livecodebench:PATH | jsonl:PATH",
    ),
    output: Path = typer.Option(..., "-o", "--output"),
    difficulty: list[str] = typer.Option([], "--difficulty", help="LeetCode only: Easy, Medium, Hard"),
    limit: int | None = typer.Option(None, "--limit"),
) -> None:
    """Write a source's problems as Problem JSONL; quarantined rows go to OUTPUT.quarantine.jsonl."""
    from tasks.problems.catalog import load_source
    from tasks.records import ProblemFormatError, write_jsonl

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
