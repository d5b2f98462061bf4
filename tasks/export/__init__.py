"""Taking artifacts away: a checkpoint as a Hugging Face model folder with a model card, a dataset as
parquet splits with a dataset card, both written from lineage (``thinkflow export``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from storage import ArtifactStore


def export_artifact(artifact_id: str, out_dir: Path, store: ArtifactStore | None = None) -> dict[str, Any]:
    """Export a checkpoint or a dataset by its kind; what was written."""
    from tasks.export.checkpoint import export_checkpoint
    from tasks.export.dataset import export_dataset
    from tasks.sections import RecipeError

    store = store or ArtifactStore()
    kind = store.get(artifact_id).kind
    if kind == "checkpoint":
        return {"kind": kind, **export_checkpoint(artifact_id, out_dir, store)}
    if kind == "dataset":
        return {"kind": kind, **export_dataset(artifact_id, out_dir, store)}
    raise RecipeError(f"{artifact_id} is a {kind}; export takes a checkpoint or a dataset")
