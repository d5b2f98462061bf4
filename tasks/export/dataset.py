"""A dataset artifact as parquet files ``datasets.load_dataset("parquet", …)`` opens, with a dataset card.

Each JSONL file of the artifact becomes one split, ``data/<name>.parquet`` (``train.jsonl`` → split
``train``). The card (``README.md``, written with ``huggingface_hub``'s card classes) names the
source files and their fingerprints, the filters and the counts they kept, filtered and
quarantined, the annotator and its settings where thoughts were generated, the artifact's own
counts (its lineage metrics, also in the front matter under ``thinkflow.metrics``) and its lineage.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from storage import ArtifactStore, LineageStore
from tasks.export.folder import move_into_place, staging_beside
from tasks.export.provenance import Provenance, gather, lineage_lines, provenance_record, settings_block
from tasks.records import read_jsonl
from tasks.sections import RecipeError

ANNOTATING_STAGES = ("coldstart_shard", "annotate_corpus_shard")  # where an annotator wrote thoughts
COUNT_KEYS = ("kept", "filtered", "quarantined")


def write_split(rows: list[dict[str, Any]], path: Path) -> list[str]:
    """The rows as one parquet file; columns Arrow cannot type as they are (values of mixed types
    across rows) are stored as JSON text, and named in the return value (the card says so)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pa.Table.from_pylist(rows)
        as_json: list[str] = []
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        columns = list(dict.fromkeys(key for row in rows for key in row))
        as_json = [c for c in columns if any(isinstance(row.get(c), (dict, list)) for row in rows)]
        table = pa.Table.from_pylist(
            [{c: json.dumps(row[c]) if c in as_json and c in row else row.get(c) for c in columns} for row in rows]
        )
    pq.write_table(table, path)
    return as_json


def count_rows(provenance: Provenance) -> list[str]:
    """Each filter run upstream: the filters it applied and what it kept, filtered and quarantined."""
    lines = []
    for run in provenance.runs_of("filter_problems"):
        filters = ", ".join(f["name"] for f in run["params"].get("filters", []))
        counts = ", ".join(f"{key} {run['metrics'][key]:g}" for key in COUNT_KEYS if key in run["metrics"])
        lines.append(f"- filters `{filters}` (run `{run['run_id']}`): {counts}")
    return lines


def annotator_lines(provenance: Provenance) -> list[str]:
    lines = []
    for stage in ANNOTATING_STAGES:
        runs = provenance.runs_of(stage)
        if not runs:
            continue
        params = {k: v for k, v in runs[0]["params"].items() if k in ("annotator", "coldstart", "corpus", "dtype")}
        lines += (
            [
                f"Thoughts were written by `{stage}` ({len(runs)} run{'s' if len(runs) > 1 else ''}), with these settings:",
                "",
            ]
            + settings_block(params)
            + [""]
        )
    return lines


def dataset_card(provenance: Provenance, splits: dict[str, int], as_json: dict[str, list[str]]):
    from huggingface_hub import DatasetCard, DatasetCardData

    metrics = provenance.metrics
    data = DatasetCardData(
        pretty_name=f"{provenance.artifact['name']} ({provenance.artifact_id})",
        tags=["thinkflow", "code", "reasoning"],
        task_categories=["text-generation"],
        source_datasets=provenance.hub_datasets() or None,
        configs=[
            {
                "config_name": "default",
                "data_files": [{"split": name, "path": f"data/{name}.parquet"} for name in splits],
            }
        ],
        thinkflow={
            "artifact_id": provenance.artifact_id,
            "stage": provenance.artifact.get("stage"),
            "rows": splits,
            "metrics": metrics,
        },
    )
    lines = [
        f"# {provenance.artifact['name']} — `{provenance.artifact_id}`",
        "",
        f"A dataset made by thinkflow's `{provenance.artifact.get('stage')}` stage; everything below is read from its lineage.",
        "",
        "```python",
        "from datasets import load_dataset",
        "",
        f'rows = load_dataset("parquet", data_files={{{", ".join(repr(n) + ": FOLDER + " + repr("/data/" + n + ".parquet") for n in splits)}}})',
        "```",
        "",
        "## Counts",
        "",
        "| split | rows |",
        "|---|---|",
    ] + [f"| {name} | {count} |" for name, count in splits.items()]
    if metrics:
        lines += ["", "What the stage recorded about it (lineage metrics):", "", "| metric | value |", "|---|---|"]
        lines += [f"| {key} | {value:g} |" for key, value in sorted(metrics.items())]
    for split, columns in as_json.items():
        if columns:
            lines += [
                "",
                f"In `{split}`, the columns {', '.join(f'`{c}`' for c in columns)} hold JSON text (their values "
                "differ in type from row to row).",
            ]
    lines += ["", "## Sources and filters", ""]
    lines += [
        f"- problems `{s['name']}`" + (f", data fingerprint `{s['data']}`" if s["data"] else "")
        for s in provenance.problem_sources()
    ]
    lines += [f"- corpus `{c.get('source')}` ({c.get('max_documents')} documents)" for c in provenance.corpus_sources()]
    lines += [f"- base model `{m}`" for m in provenance.base_models()]
    lines += count_rows(provenance) + [""] + annotator_lines(provenance)
    lines += ["## Lineage", ""] + lineage_lines(provenance) + [""]
    return DatasetCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines) + "\n")


def export_dataset(artifact_id: str, out_dir: Path, store: ArtifactStore | None = None) -> dict[str, Any]:
    """Write the dataset's JSONL files as parquet splits at ``out_dir`` with a dataset card; what was written."""
    store = store or ArtifactStore()
    artifact = store.get(artifact_id)
    if artifact.kind != "dataset":
        raise RecipeError(f"{artifact_id} is a {artifact.kind}, not a dataset")
    files = sorted(store.path(artifact_id).glob("*.jsonl"))
    if not files:
        raise RecipeError(
            f"{artifact_id} holds no JSONL file to export ({', '.join(p.name for p in store.path(artifact_id).iterdir())})"
        )
    provenance = gather(store, LineageStore(store.lineage_path), artifact_id)
    staged = staging_beside(out_dir)
    try:
        (staged / "data").mkdir()
        splits, as_json = {}, {}
        for path in files:
            split = path.stem.replace("-", "_")
            rows = read_jsonl(path)
            as_json[split] = write_split(rows, staged / "data" / f"{split}.parquet")
            splits[split] = len(rows)
        dataset_card(provenance, splits, as_json).save(staged / "README.md")
        (staged / "thinkflow.json").write_text(
            json.dumps({**provenance_record(provenance), "splits": splits}, indent=1, default=str)
        )
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    folder = move_into_place(staged, out_dir)
    return {"artifact_id": artifact_id, "folder": str(folder), "splits": splits}
