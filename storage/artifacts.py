"""Content-addressed artifact store under ``THINKFLOW_HOME``.

Each artifact is a directory ``artifacts/<kind>-<hash16>/`` holding its files (HF layouts, JSONL,
JSON reports) and an ``artifact.json`` sidecar: kind, name, parent ids, config, metadata. The id
is a hash of the kind, name, parent ids and every file's path and bytes, so the same content from
the same parents always gets the same id, and writing it twice stores it once. Writes are staged
in ``staging/`` and moved into place with one rename: a half-written artifact is never visible.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

KINDS = ("dataset", "checkpoint", "report", "plot")
SIDECAR = "artifact.json"


class ArtifactNotFound(LookupError):
    pass


def default_home() -> Path:
    return Path(os.environ.get("THINKFLOW_HOME", ".thinkflow")).resolve()


@dataclass(frozen=True)
class Artifact:
    artifact_id: str
    kind: str
    name: str
    path: Path
    parents: tuple[str, ...]
    config: dict[str, Any]
    metadata: dict[str, Any]
    created_at: str

    @property
    def uri(self) -> str:
        return self.path.as_uri()


def hash_directory(root: Path, header: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(header, sort_keys=True).encode())
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != SIDECAR):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


class ArtifactStore:
    def __init__(self, home: Path | str | None = None):
        self.home = Path(home).resolve() if home else default_home()
        self.root = self.home / "artifacts"
        self.staging_root = self.home / "staging"
        self.root.mkdir(parents=True, exist_ok=True)
        self.staging_root.mkdir(parents=True, exist_ok=True)

    @property
    def lineage_path(self) -> Path:
        """The DuckDB lineage file that records this store's runs (storage.lineage.LineageStore)."""
        return self.home / "lineage.duckdb"

    @property
    def epoch(self) -> str:
        """A random id minted when this store was created: wiping the store changes it."""
        marker = self.home / "store.json"
        if not marker.exists():
            tmp = marker.with_suffix(f".{uuid.uuid4().hex}.tmp")
            tmp.write_text(json.dumps({"epoch": uuid.uuid4().hex}))
            try:
                os.link(tmp, marker)  # first writer wins; never overwrite an existing epoch
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        return json.loads(marker.read_text())["epoch"]

    def new_staging_dir(self, label: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=f"{label}-", dir=self.staging_root))

    def commit(
        self,
        staged: Path,
        *,
        kind: str,
        name: str,
        parents: list[str] | tuple[str, ...] = (),
        config: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Artifact:
        """Move a staged directory into the store under its content id and return the artifact."""
        if kind not in KINDS:
            raise ValueError(f"artifact kind {kind!r} is not one of {KINDS}")
        parents = tuple(sorted(set(parents)))
        digest = hash_directory(staged, {"kind": kind, "name": name, "parents": parents})
        artifact_id = f"{kind}-{digest[:16]}"
        sidecar = {
            "artifact_id": artifact_id,
            "kind": kind,
            "name": name,
            "parents": list(parents),
            "config": config or {},
            "metadata": metadata or {},
            "created_at": datetime.now(UTC).isoformat(),
        }
        (staged / SIDECAR).write_text(json.dumps(sidecar, indent=2, default=str))
        final = self.root / artifact_id
        try:
            os.rename(staged, final)
        except OSError:
            if not (final / SIDECAR).exists():
                raise
            shutil.rmtree(staged, ignore_errors=True)  # same content already stored
        return self.get(artifact_id)

    def path(self, artifact_id: str) -> Path:
        path = self.root / artifact_id
        if not (path / SIDECAR).exists():
            raise ArtifactNotFound(f"artifact {artifact_id} is not in the store at {self.root}")
        return path

    def get(self, artifact_id: str) -> Artifact:
        path = self.path(artifact_id)
        meta = json.loads((path / SIDECAR).read_text())
        return Artifact(
            artifact_id=meta["artifact_id"],
            kind=meta["kind"],
            name=meta["name"],
            path=path,
            parents=tuple(meta["parents"]),
            config=meta["config"],
            metadata=meta["metadata"],
            created_at=meta["created_at"],
        )

    def exists(self, artifact_id: str) -> bool:
        return (self.root / artifact_id / SIDECAR).exists()

    def all_ids(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if (p / SIDECAR).exists())
