"""``thinkflow export ARTIFACT_ID -o DIR``: a checkpoint as a Hugging Face model folder with a model
card, a dataset as parquet splits with a dataset card; ``--push-to-hub REPO`` uploads the folder."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from flows.cli.output import console


def export(
    artifact_id: str = typer.Argument(
        ..., help="a checkpoint or dataset id (thinkflow lineage runs / run --json list them)"
    ),
    out: Path = typer.Option(..., "-o", "--out", help="a new (or empty) folder to write"),
    push_to_hub: str | None = typer.Option(
        None, "--push-to-hub", help="also upload the folder to this Hub repo (needs network and a token)"
    ),
    public: bool = typer.Option(False, "--public", help="with --push-to-hub: a public repo (default private)"),
    as_json: bool = typer.Option(False, "--json", help="print what was written as JSON"),
) -> None:
    """Export a checkpoint or a dataset from the artifact store in the forms other tools load."""
    from tasks.export import export_artifact

    written = export_artifact(artifact_id, out.resolve())
    if push_to_hub:
        from tasks.export.checkpoint import push_to_hub as upload

        written["hub"] = upload(
            Path(written["folder"]),
            push_to_hub,
            "model" if written["kind"] == "checkpoint" else "dataset",
            private=not public,
        )
    if as_json:
        sys.stdout.write(json.dumps(written, default=str) + "\n")
        return
    what = (
        f"{len(written.get('files', []))} files"
        if written["kind"] == "checkpoint"
        else ", ".join(f"{split}: {rows} rows" for split, rows in written["splits"].items())
    )
    console.print(
        f"{artifact_id} -> {written['folder']} ({what}); card: {Path(written['folder']) / 'README.md'}", highlight=False
    )
    if "hub" in written:
        console.print(f"uploaded to {written['hub']}", highlight=False)
