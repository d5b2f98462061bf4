"""Where an export is written: a new folder, filled beside it and renamed into place, so a failed
export leaves nothing half-written and never touches an existing folder's files."""

from __future__ import annotations

import shutil
from pathlib import Path

from tasks.sections import RecipeError


def staging_beside(out_dir: Path) -> Path:
    """An empty folder next to ``out_dir`` (one rename puts it in place); ``out_dir`` must be new or empty."""
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise RecipeError(
            f"{out_dir} already exists and is not an empty folder; export writes a new folder (nothing is overwritten)"
        )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staged = out_dir.parent / f".{out_dir.name}.partial"
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir()
    return staged


def move_into_place(staged: Path, out_dir: Path) -> Path:
    if out_dir.exists():
        out_dir.rmdir()  # empty, checked before anything was written
    staged.rename(out_dir)
    return out_dir
