"""What every stage shares: its cache key and the lineage record of its run.

Cache key (``stage_cache``): the task's inputs (artifact ids and its config section), the source
of the task's module and of the modules it names, and the artifact store's epoch. Prefect's own
TASK_SOURCE hashes only the decorated function, not the plain functions holding the logic; and
without the epoch a wiped store would hand back ids of artifacts that no longer exist.

Lineage (``StageRun``): a context manager that stages output directories, commits them to the
artifact store, and on exit writes one ``runs`` row with its input/output edges and metrics in a
single transaction, status ``completed`` or ``failed``.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import logging
import shutil
from pathlib import Path
from typing import Any

from prefect.cache_policies import INPUTS, CachePolicy
from prefect.context import TaskRunContext

from storage import ArtifactStore, LineageBusy, LineageStore
from storage.lineage import now
from tasks.progress import progress_logger

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def module_sources(names: tuple[str, ...]) -> list[Path]:
    files: list[Path] = []
    for name in names:
        module = importlib.import_module(name)
        path = Path(inspect.getfile(module))
        files += sorted(path.parent.glob("*.py")) if path.name == "__init__.py" else [path]
    return files


def source_hash(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(PROJECT_ROOT) if path.is_relative_to(PROJECT_ROOT) else path.name).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


class StageCode(CachePolicy):
    """The source of the task's module plus the named modules/packages and files (prompts) it relies on."""

    def __init__(self, modules: tuple[str, ...] = (), files: tuple[Path, ...] = ()):
        self.modules, self.files = modules, files

    def compute_key(self, task_ctx: TaskRunContext, inputs, flow_parameters, **kwargs) -> str | None:
        if not task_ctx:
            return None
        own = Path(inspect.getfile(task_ctx.task.fn))
        return source_hash([own] + module_sources(self.modules) + list(self.files))


class StoreEpoch(CachePolicy):
    """Changes when THINKFLOW_HOME is pointed elsewhere or wiped."""

    def compute_key(self, task_ctx, inputs, flow_parameters, **kwargs) -> str | None:
        store = ArtifactStore()
        return f"{store.home}:{store.epoch}"


def stage_cache(*modules: str, ignore: tuple[str, ...] = (), files: tuple[Path, ...] = ()) -> CachePolicy:
    """``ignore``: task parameters that say how, not what (an endpoint's address, a concurrency);
    ``files``: non-Python files the stage reads (prompt templates)."""
    inputs = INPUTS
    for name in ignore:
        inputs = inputs - name
    return inputs + StageCode(modules, files) + StoreEpoch()


def run_logger() -> logging.Logger | logging.LoggerAdapter:
    """The Prefect run logger inside a run, the ``thinkflow`` logger outside (one rule, in tasks.progress)."""
    return progress_logger()


def current_flow_run_id() -> str | None:
    try:
        from prefect.runtime import flow_run

        return flow_run.id
    except Exception:  # noqa: BLE001
        return None


class StageRun:
    """One execution of a stage, as lineage: ``with StageRun("sft", inputs, params) as run: ...``."""

    def __init__(self, stage: str, inputs: dict[str, str], params: dict[str, Any], code_modules: tuple[str, ...] = ()):
        self.stage = stage
        self.inputs = inputs
        self.params = params
        self.store = ArtifactStore()
        self.lineage = LineageStore(self.store.lineage_path)
        self.code_version = source_hash(module_sources(("tasks.stage_run",) + code_modules))
        self.outputs: dict[str, dict[str, Any]] = {}
        self.metric_rows: list[tuple[str | None, str, float, int | None]] = []
        self._staged: list[Path] = []
        self._resumable: list[Path] = []
        self.log = run_logger()

    def __enter__(self) -> "StageRun":
        self.started_at = now()
        for role, artifact_id in self.inputs.items():
            self.store.path(artifact_id)  # fail early, naming the id, when an input is missing
        return self

    def input_path(self, role: str) -> Path:
        return self.store.path(self.inputs[role])

    def staging(self, label: str) -> Path:
        path = self.store.new_staging_dir(f"{self.stage}-{label}")
        self._staged.append(path)
        return path

    def resumable_dir(self) -> Path:
        """A folder named by this run's inputs, params and code that outlives a failed or killed
        attempt (training checkpoints live there, so a retry resumes); removed once the run
        completes."""
        import json

        key = hashlib.sha256(json.dumps([self.stage, self.inputs, self.params, self.code_version], sort_keys=True,
                                        default=str).encode()).hexdigest()[:16]
        path = self.store.home / "work" / f"{self.stage}-{key}"
        path.mkdir(parents=True, exist_ok=True)
        self._resumable.append(path)
        return path

    def output(
        self,
        role: str,
        staged: Path,
        *,
        kind: str,
        name: str,
        metadata: dict[str, Any] | None = None,
        metrics: dict[str, float] | None = None,
        series: dict[str, list[tuple[int, float]]] | None = None,
    ) -> str:
        """Commit a staged directory as an artifact of this run; returns its id."""
        artifact = self.store.commit(
            staged, kind=kind, name=name, parents=sorted(self.inputs.values()), config=self.params,
            metadata={**(metadata or {}), "metrics": metrics or {}},
        )
        self.outputs[role] = {
            "artifact_id": artifact.artifact_id, "kind": kind, "name": name, "uri": artifact.uri,
            "metadata": artifact.metadata,
        }
        for key, value in (metrics or {}).items():
            self.metric_rows.append((artifact.artifact_id, key, float(value), None))
        for key, points in (series or {}).items():
            self.metric_rows += [(artifact.artifact_id, key, float(v), int(step)) for step, v in points]
        return artifact.artifact_id

    def __exit__(self, exc_type, exc, tb) -> None:
        for path in self._staged + (self._resumable if exc_type is None else []):
            if path.exists():
                shutil.rmtree(path, ignore_errors=True)
        try:
            self.record(exc_type is None)
        except LineageBusy as busy:  # the record is journalled: the next lineage access writes it; redoing the stage would not help
            self.log.warning("lineage: %s", busy)

    def record(self, completed: bool) -> None:
        self.lineage.record_run(
            stage=self.stage,
            flow_run_id=current_flow_run_id(),
            params=self.params,
            code_version=self.code_version,
            inputs=self.inputs,
            outputs=self.outputs if completed else {},
            metrics=self.metric_rows if completed else [],
            status="completed" if completed else "failed",
            started_at=self.started_at,
            ended_at=now(),
        )


def shards_for(items: int, shard_size: int) -> int:
    """How many shards of ``shard_size`` hold ``items`` (the last one may be short)."""
    return -(-items // shard_size)


PERMANENT_ERRORS = (ValueError, LookupError, TypeError)  # bad data or config: a retry cannot help


def retry_transient(task, task_run, state) -> bool:
    """Prefect retry condition: retry sandbox/worker/IO failures, not errors in the inputs."""
    try:
        state.result(raise_on_failure=True)
    except PERMANENT_ERRORS:
        return False
    except BaseException:  # noqa: BLE001
        return True
    return True
