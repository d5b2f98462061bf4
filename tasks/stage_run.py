"""What every stage shares: its cache key and the lineage record of its run.

Cache key (``stage_cache``): the task's inputs (artifact ids, and each config section by its
``cache_key()``: the settings that decide the result), the stage's code version, and the artifact
store's epoch. The code version (``tasks.code_version``) is derived from the task's module and
everything it reaches: Prefect's own TASK_SOURCE hashes only the decorated function, not the plain
functions holding the logic; and without the epoch a wiped store would hand back ids of artifacts
that no longer exist. The lineage record's ``code_version`` is the same value.

Lineage (``StageRun``): a context manager that stages output directories, commits them to the
artifact store, and on exit writes one ``runs`` row with its input/output edges and metrics in a
single transaction, status ``completed`` or ``failed``.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import sys
from pathlib import Path
from typing import Any

from prefect.cache_policies import CachePolicy
from prefect.context import TaskRunContext
from prefect.utilities.hashing import hash_objects

from storage import ArtifactStore, LineageBusy, LineageStore
from storage.lineage import now
from tasks.code_version import PROJECT_ROOT, code_version
from tasks.progress import progress_logger

__all__ = ["PROJECT_ROOT", "StageRun", "retry_transient", "run_logger", "shards_for", "stage_cache"]


def cache_value(value: Any) -> Any:
    """What of an argument decides the result: a config section says so itself (``cache_key()``)."""
    if hasattr(value, "cache_key"):
        return value.cache_key()
    if isinstance(value, (list, tuple)):
        return [cache_value(v) for v in value]
    return value


class StageInputs(CachePolicy):
    """The task's arguments, config sections by their ``cache_key()``."""

    def compute_key(self, task_ctx: TaskRunContext, inputs, flow_parameters, **kwargs) -> str | None:
        return hash_objects(
            {name: cache_value(value) for name, value in sorted((inputs or {}).items())}, raise_on_failure=True
        )


class StageCode(CachePolicy):
    """The code version of the task's module: its source and everything it reaches."""

    def compute_key(self, task_ctx: TaskRunContext, inputs, flow_parameters, **kwargs) -> str | None:
        if not task_ctx:
            return None
        return code_version(task_ctx.task.fn.__module__)


class StoreEpoch(CachePolicy):
    """Changes when THINKFLOW_HOME is pointed elsewhere or wiped."""

    def compute_key(self, task_ctx, inputs, flow_parameters, **kwargs) -> str | None:
        store = ArtifactStore()
        return f"{store.home}:{store.epoch}"


def stage_cache() -> CachePolicy:
    """Every stage's cache policy. Settings that say how rather than what (an endpoint, a
    concurrency) stay out of it by being listed in their section's ``HOW``."""
    return StageInputs() + StageCode() + StoreEpoch()


def run_logger() -> logging.Logger | logging.LoggerAdapter:
    """The Prefect run logger inside a run, the ``thinkflow`` logger outside (one rule, in tasks.progress)."""
    return progress_logger()


def stage_module() -> str:
    """The module of the task running this stage (the caller's module outside a task run)."""
    task_ctx = TaskRunContext.get()
    if task_ctx is not None:
        return task_ctx.task.fn.__module__
    return sys._getframe(2).f_globals["__name__"]


def current_flow_run_id() -> str | None:
    try:
        from prefect.runtime import flow_run

        return flow_run.id
    except Exception:  # noqa: BLE001
        return None


class StageRun:
    """One execution of a stage, as lineage: ``with StageRun("sft", inputs, params) as run: ...``."""

    def __init__(self, stage: str, inputs: dict[str, str], params: dict[str, Any], code_module: str | None = None):
        """``code_module``: the project module whose code version the run records, for a caller outside
        the project's packages (a benchmark running a stage's worker); by default the task's module."""
        self.stage = stage
        self.inputs = inputs
        self.params = params
        self.store = ArtifactStore()
        self.lineage = LineageStore(self.store.lineage_path)
        self.code_version = code_version(code_module or stage_module())
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

        key = hashlib.sha256(
            json.dumps([self.stage, self.inputs, self.params, self.code_version], sort_keys=True, default=str).encode()
        ).hexdigest()[:16]
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
            staged,
            kind=kind,
            name=name,
            parents=sorted(self.inputs.values()),
            config=self.params,
            metadata={**(metadata or {}), "metrics": metrics or {}},
        )
        self.outputs[role] = {
            "artifact_id": artifact.artifact_id,
            "kind": kind,
            "name": name,
            "uri": artifact.uri,
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
        except (
            LineageBusy
        ) as busy:  # the record is journalled: the next lineage access writes it; redoing the stage would not help
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
