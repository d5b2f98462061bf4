"""What each stage made, as the Prefect UI shows it: one markdown artifact per stage of a flow run.

The stage log publishes after every stage, cached or not, from lineage (so a run that reused a stage
still shows its report). The key is the pipeline and the stage (``think-anywhere-evaluate-rl``), so
two flows never hide each other's artifacts. Each artifact lists what the stage's run made with
its metrics as a two-column table, the tables its reports carry (a comparison's, a filter's
reconciliation) cut into column groups narrow enough to read without scrolling, and every PNG of
those artifacts embedded as a data URI: viewable in the browser, on a remote server too, without
the local filesystem.
"""

from __future__ import annotations

import base64
import math
import re
from pathlib import Path
from typing import Any

from prefect.artifacts import create_markdown_artifact
from prefect.logging import get_logger

from storage import ArtifactStore, LineageStore

MAX_COLUMNS = 6  # a table wider than this is cut into groups of columns, each with the first (label) column
MAX_METRICS = 40  # a stage's metric table stops here (the lineage store has them all)


def artifact_key(*parts: str) -> str:
    """A Prefect artifact key (lowercase letters, digits, dashes) from a pipeline and a stage name."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]+", "-", "-".join(parts).lower())).strip("-")


def png_markdown(path: Path) -> str:
    """The image inline: a data URI, not a file:// link a browser refuses (and a remote server lacks)."""
    return f"![{path.name}](data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()})"


def format_value(value: Any) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            return "nan"
        return str(int(value)) if value.is_integer() else f"{value:.4g}"
    return str(value)


def narrow_tables(markdown: str, max_columns: int = MAX_COLUMNS) -> str:
    """Every markdown table wider than ``max_columns`` cut into tables of at most that many columns,
    each repeating the first column (the row's label)."""
    out, block = [], []

    def flush() -> None:
        if block:
            out.extend(split_table(block, max_columns))
            block.clear()

    for line in markdown.splitlines():
        if line.lstrip().startswith("|"):
            block.append(line)
        else:
            flush()
            out.append(line)
    flush()
    return "\n".join(out)


def cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def split_table(lines: list[str], max_columns: int) -> list[str]:
    rows = [cells(line) for line in lines]
    width = max(len(row) for row in rows)
    if width <= max_columns or len(rows) < 2:
        return lines
    out = []
    for start in range(1, width, max_columns - 1):
        columns = [0] + list(range(start, min(width, start + max_columns - 1)))
        for row in rows:
            out.append("| " + " | ".join(row[c] if c < len(row) else "" for c in columns) + " |")
        out.append("")
    return out[:-1]


def metrics_table(metrics: dict[str, float]) -> list[str]:
    if not metrics:
        return []
    paired = [key for key in metrics if key.startswith("paired/")]  # a comparison's paired table shows them
    listed = sorted((key, value) for key, value in metrics.items() if not key.startswith("paired/"))
    shown = listed[:MAX_METRICS]
    lines = ["| metric | value |", "|---|---|"] + [f"| {key} | {format_value(value)} |" for key, value in shown]
    if len(listed) > MAX_METRICS:
        lines.append(f"| … | {len(listed) - MAX_METRICS} more: `thinkflow lineage show ID --json` |")
    if paired:
        lines.append(f"| paired/… | {len(paired)} paired differences: the paired table below |")
    return lines


def rows_table(rows: list[dict[str, Any]]) -> list[str]:
    """A list of records (a filter's reconciliation) as a markdown table."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)] + [
        "| " + " | ".join(format_value(row.get(c, "")) for c in columns) + " |" for row in rows
    ]


def output_section(store: ArtifactStore, lineage: LineageStore, artifact_id: str) -> list[str]:
    """One artifact: id, kind and name, its metrics, its report tables and its plots."""
    artifact = store.get(artifact_id)
    lines = [f"### {artifact.name} `{artifact_id}`", ""]
    lines += metrics_table(lineage.metrics_of(artifact_id))
    folder = store.path(artifact_id)
    if isinstance(artifact.metadata.get("report"), list) and artifact.metadata["report"]:
        lines += ["", "Rows in = kept + filtered + quarantined, per source and reason:", ""] + rows_table(
            artifact.metadata["report"]
        )
    for name in ("comparison.md",):
        if (folder / name).exists():
            lines += ["", narrow_tables((folder / name).read_text().strip())]
    for png in sorted(folder.glob("*.png")):
        lines += ["", f"**{png.name}**", "", png_markdown(png)]
    return lines + [""]


def stage_markdown(
    store: ArtifactStore, lineage: LineageStore, pipeline: str, stage: str, artifact_ids: list[str], cached: bool
) -> str:
    """The stage's artifact: what its run made (the returned artifacts and their siblings, e.g. an RL
    run's curves beside its checkpoint)."""
    shown: list[str] = []
    for artifact_id in artifact_ids:
        record = lineage.artifact(artifact_id)
        run = lineage.run(record["created_by_run"]) if record and record["created_by_run"] else None
        siblings = [o["artifact_id"] for o in run["outputs"]] if run else []
        for candidate in [artifact_id] + siblings:
            if candidate not in shown and store.exists(candidate):
                shown.append(candidate)
    lines = [
        f"## {pipeline}: {stage}",
        "",
        f"{'cached: reused from an earlier run' if cached else 'ran in this flow run'}; "
        f"{len(artifact_ids)} artifact(s) returned",
        "",
    ]
    for artifact_id in shown:
        lines += output_section(store, lineage, artifact_id)
    return "\n".join(lines)


def publish_stage(pipeline: str, stage: str, artifact_ids: list[str], cached: bool) -> None:
    """Publish the stage's markdown artifact on the current flow run; a failure is a log line, never a failed stage."""
    try:
        store = ArtifactStore()
        markdown = stage_markdown(store, LineageStore(store.lineage_path), pipeline, stage, artifact_ids, cached)
        create_markdown_artifact(
            key=artifact_key(pipeline, stage), markdown=markdown, description=f"{pipeline}: {stage}"
        )
    except Exception as exc:  # noqa: BLE001 - lineage and the files hold everything shown here
        get_logger("thinkflow").warning("could not publish the Prefect artifact of %s: %s", stage, exc)


def publish_markdown(key: str, markdown: str, description: str) -> None:
    try:
        create_markdown_artifact(key=key, markdown=markdown, description=description)
    except Exception as exc:  # noqa: BLE001 - outside a flow run there is nothing to attach it to
        get_logger("thinkflow").info("no Prefect artifact %s: %s", key, exc)
