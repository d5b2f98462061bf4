"""``thinkflow lineage …``: where an artifact came from, what came of it, how two runs differ.

    thinkflow lineage show ARTIFACT_ID            # the artifact, what it was made from, what was made from it
    thinkflow lineage upstream|downstream ARTIFACT_ID
    thinkflow lineage runs [--stage sft]          # newest runs, to find ids for diff
    thinkflow lineage diff RUN_A RUN_B            # params, inputs, outputs, metrics side by side
    thinkflow lineage graph ARTIFACT_ID -o lineage.png
    thinkflow lineage export -o events.jsonl      # OpenLineage-style RunEvents

Every command takes ``--json``; a run may be named by its id, a unique prefix, or an artifact it made.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from flows.cli.output import console, fail

lineage_app = typer.Typer(no_args_is_help=True, help="Ask where an artifact came from and what came of it.")
JSON_OPTION = typer.Option(False, "--json", help="print JSON instead of a table or tree")


def open_lineage():
    """The store and its lineage; waits up to THINKFLOW_LINEAGE_WAIT_S (60) for a writer to let go."""
    from storage import ArtifactStore, LineageStore

    store = ArtifactStore()
    try:
        wait_s = float(os.environ.get("THINKFLOW_LINEAGE_WAIT_S", "60"))
    except ValueError:
        fail(f"THINKFLOW_LINEAGE_WAIT_S={os.environ['THINKFLOW_LINEAGE_WAIT_S']!r} is not a number of seconds")
    return store, LineageStore(store.lineage_path, lock_timeout_s=wait_s)


def print_json(value) -> None:
    sys.stdout.write(json.dumps(value, default=str) + "\n")


def known_artifact(lineage, home, artifact_id: str) -> dict:
    record = lineage.artifact(artifact_id)
    if record is None:
        fail(f"artifact {artifact_id} is not in the lineage at {home}")
    return record


def artifacts_named(lineage, root_id: str, links) -> dict:
    """Kind, name and version of the root and every artifact on the links, in one query."""
    return lineage.artifacts(sorted({root_id} | {l.artifact_id for l in links} | {l.parent_id for l in links}))


def grow_tree(node: Tree, root_id: str, links, info: dict, upstream: bool) -> None:
    """Hang each link under the artifact it leads from; an artifact met twice is shown once in full."""
    children: dict[str, list] = {}
    for link in links:
        key, other = (link.artifact_id, link.parent_id) if upstream else (link.parent_id, link.artifact_id)
        children.setdefault(key, []).append((link.stage, link.role, other))
    expanded: set[str] = set()

    def grow(branch: Tree, artifact_id: str) -> None:
        for stage, role, other in sorted(children.get(artifact_id, []), key=lambda c: (c[0], c[2])):
            arrow = "←" if upstream else "→"
            shown_before = other in expanded and other in children
            leaf = branch.add(
                f"{arrow} [dim]{escape(stage)} ({escape(role)})[/dim] {artifact_label(other, info)}"
                + (" [dim](see above)[/dim]" if shown_before else "")
            )
            if not shown_before:
                expanded.add(other)
                grow(leaf, other)

    grow(node, root_id)


def artifact_label(artifact_id: str, info: dict) -> str:
    known = info.get(artifact_id)
    if not known:
        return f"[bold]{artifact_id}[/bold]"
    return f"[bold]{artifact_id}[/bold] {escape(known['name'] or '')} [dim]v{known['version']}[/dim]"


@lineage_app.command("show")
def lineage_show(
    artifact_id: str, depth: int = typer.Option(64, help="how many steps to walk each way"), as_json: bool = JSON_OPTION
) -> None:
    """An artifact (kind, name, version, location, the run that made it, its metrics) as a tree:
    what it was made from, and what was made from it."""
    store, lineage = open_lineage()
    record = known_artifact(lineage, store.home, artifact_id)
    record["metrics"] = lineage.metrics_of(artifact_id)
    up, down = lineage.upstream(artifact_id, depth), lineage.downstream(artifact_id, depth)
    if as_json:
        print_json(
            {**record, "upstream": [link.__dict__ for link in up], "downstream": [link.__dict__ for link in down]}
        )
        return
    info = artifacts_named(lineage, artifact_id, up + down)
    root = Tree(f"{artifact_label(artifact_id, info)} [dim]{record['kind']}[/dim]")
    details = root.add("[bold]details[/bold]")
    for key in ("uri", "stage", "created_by_run", "created_at"):
        details.add(f"{key}: {escape(str(record[key]))}")
    if record["metrics"]:
        metrics = root.add("[bold]metrics[/bold]")
        for key, value in record["metrics"].items():
            metrics.add(f"{escape(key)} = {value:g}")
    grow_tree(root.add(f"[bold]made from[/bold] ({len(up)} links)"), artifact_id, up, info, upstream=True)
    grow_tree(root.add(f"[bold]made into[/bold] ({len(down)} links)"), artifact_id, down, info, upstream=False)
    console.print(root)


def lineage_walk(artifact_id: str, depth: int, as_json: bool, upstream: bool) -> None:
    store, lineage = open_lineage()
    known_artifact(lineage, store.home, artifact_id)
    links = lineage.upstream(artifact_id, depth) if upstream else lineage.downstream(artifact_id, depth)
    if as_json:
        print_json([link.__dict__ for link in links])
        return
    info = artifacts_named(lineage, artifact_id, links)
    tree = Tree(artifact_label(artifact_id, info))
    grow_tree(tree, artifact_id, links, info, upstream)
    console.print(tree)


@lineage_app.command("upstream")
def lineage_upstream(artifact_id: str, depth: int = typer.Option(64), as_json: bool = JSON_OPTION) -> None:
    """What produced this artifact, recursively."""
    lineage_walk(artifact_id, depth, as_json, upstream=True)


@lineage_app.command("downstream")
def lineage_downstream(artifact_id: str, depth: int = typer.Option(64), as_json: bool = JSON_OPTION) -> None:
    """What was made from this artifact, recursively (e.g. every checkpoint trained on a dataset)."""
    lineage_walk(artifact_id, depth, as_json, upstream=False)


@lineage_app.command("runs")
def lineage_runs(
    stage: str | None = typer.Option(None, help="only this stage (e.g. sft, train_grpo)"),
    flow_run: str | None = typer.Option(None, "--flow-run", help="only runs of this Prefect flow run id"),
    limit: int = typer.Option(20, min=1),
    as_json: bool = JSON_OPTION,
) -> None:
    """The newest stage runs: id, stage, status, when, what they made."""
    _, lineage = open_lineage()
    runs = lineage.recent_runs(limit=limit, stage=stage, flow_run_id=flow_run)
    if as_json:
        print_json(runs)
        return
    table = Table(title=Text(f"newest {len(runs)} runs"))
    for column in ("run", "stage", "label", "status", "ended", "outputs"):
        table.add_column(column, overflow="fold")
    for run in runs:
        table.add_row(
            run["run_id"],
            run["stage"],
            run["label"] or "",
            run["status"],
            str(run["ended_at"])[:19],
            ", ".join(run["outputs"]),
        )
    console.print(table)


@lineage_app.command("diff")
def lineage_diff(
    run_a: str = typer.Argument(..., help="run id, unique prefix, or an artifact the run made"),
    run_b: str = typer.Argument(...),
    show_all: bool = typer.Option(False, "--all", help="list identical params too"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Two runs side by side: params (changed ones), inputs, outputs and metrics with deltas."""
    from storage import LineageNotFound
    from storage.run_diff import diff_runs

    _, lineage = open_lineage()
    try:
        a, b = lineage.run(lineage.resolve_run(run_a)), lineage.run(lineage.resolve_run(run_b))
    except LineageNotFound as exc:
        fail(str(exc))
    diff = diff_runs(a, b)
    if as_json:
        print_json(diff)
        return
    for section in ("runs", "params", "inputs", "outputs", "metrics"):
        rows = diff[section] if show_all or section != "params" else [r for r in diff[section] if not r["same"]]
        same = len(diff[section]) - len(rows)
        title = f"{section}" + (f" ({same} identical not shown; --all lists them)" if same else "")
        table = Table(title=Text(title), title_justify="left")
        for column in ("key", "A", "B") + (("B − A",) if section == "metrics" else ()):
            table.add_column(column, overflow="fold")
        for row in rows:
            style = None if row["same"] else "yellow"
            cells = [row["key"], str(row["a"]), str(row["b"])]
            if section == "metrics":
                cells.append("" if row["delta"] is None else f"{row['delta']:+.4g}")
            table.add_row(*[Text(c) for c in cells], style=style)
        console.print(table)


@lineage_app.command("graph")
def lineage_graph(
    artifact_id: str,
    output: Path = typer.Option(..., "-o", "--output", help="PNG file to write"),
    depth: int = typer.Option(64, help="how many steps to walk each way"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Draw the artifact's lineage graph (made from ← | → made into) as a PNG."""
    from tasks.lineage_graph import draw_lineage_graph

    store, lineage = open_lineage()
    known_artifact(lineage, store.home, artifact_id)
    path = draw_lineage_graph(lineage, artifact_id, output, depth)
    print_json({"artifact_id": artifact_id, "graph": str(path)}) if as_json else console.print(
        f"lineage graph of {artifact_id} → {path}"
    )


@lineage_app.command("export")
def lineage_export(
    output: Path = typer.Option(..., "-o", "--output", help="JSON lines file, one RunEvent per line"),
    since: datetime | None = typer.Option(None, help="only runs that ended at or after this time (ISO 8601)"),
    namespace: str = typer.Option("thinkflow", help="OpenLineage namespace for jobs and datasets"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Every run as OpenLineage-style START/COMPLETE|FAIL events, for an existing lineage service."""

    from storage.openlineage import lineage_events

    _, lineage = open_lineage()
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    events = lineage_events(lineage, since, namespace)
    output.parent.mkdir(parents=True, exist_ok=True)
    temp = output.with_name(output.name + ".partial")
    temp.write_text("".join(json.dumps(event, default=str) + "\n" for event in events))
    temp.replace(output)
    summary = {"events": len(events), "runs": len(events) // 2, "output": str(output)}
    print_json(summary) if as_json else console.print(
        f"{summary['events']} events for {summary['runs']} runs → {output}"
    )
