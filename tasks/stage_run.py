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

Declaration (``stage``): a stage is declared once, on its function: its name (the Prefect task's,
the lineage record's and the summary's), which arguments hold input artifact ids, and its retry
policy. Inside, ``StageRun()`` takes the rest from the task run: the inputs from those arguments and
the params from every other argument, the very arguments the cache key is made of, so the record
and the key cannot disagree; the flow's label for this use of the stage ("rl", "sft stage 1")
comes from the task run's name.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import CachePolicy
from prefect.context import TaskRunContext
from prefect.utilities.hashing import hash_objects

from storage import ArtifactStore, LineageBusy, LineageStore
from storage.lineage import new_run_id, now
from tasks.code_version import PROJECT_ROOT, code_version
from tasks.progress import progress_logger
from tasks.stage_names import label_of, task_run_name

__all__ = [
    "PROJECT_ROOT",
    "StageRun",
    "retry_transient",
    "run_logger",
    "shards_for",
    "stage",
    "stage_cache",
    "task_run_name",
]


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


@dataclass(frozen=True)
class Declaration:
    name: str
    inputs: dict[str, str]  # lineage role -> the argument holding that input's artifact id


def stage(
    name: str,
    *,
    inputs: dict[str, str] | None = None,
    retries: int = 0,
    retry_delay_seconds: int | list[int] = 10,
    gpu: bool = False,
    cache_policy: CachePolicy | None = None,
):
    """Declare a stage: ``@stage("sft", inputs={"model": "base_model_id", "dataset": "dataset_id"}, retries=1, gpu=True)``.

    ``inputs`` maps a lineage role to the argument holding that artifact id; a list argument gives
    roles ``role0``, ``role1``…, a dict argument ``role`` + each key, ``None`` gives none. Retries are
    for transient failures only (``is_transient``); ``gpu`` tags the task for a GPU work pool;
    ``cache_policy`` adds to ``stage_cache()`` what else decides the result (source data)."""

    def declare(fn):
        fn.__stage__ = Declaration(name, dict(inputs or {}))
        return task(
            name=name,
            tags=["gpu"] if gpu else None,
            retries=retries,
            retry_delay_seconds=retry_delay_seconds if retries else 0,
            retry_condition_fn=retry_transient if retries else None,
            cache_policy=stage_cache() + cache_policy if cache_policy else stage_cache(),
            persist_result=True,
        )(fn)

    return declare


def lineage_value(value: Any) -> Any:
    """An argument as the lineage records it: a config section by all its settings (``to_json()``)."""
    if hasattr(value, "to_json"):
        return value.to_json()
    if isinstance(value, (list, tuple)):
        return [lineage_value(v) for v in value]
    if isinstance(value, dict):
        return {k: lineage_value(v) for k, v in value.items()}
    return value


def declared_run(arguments: dict[str, Any], declaration: Declaration) -> tuple[dict[str, str], dict[str, Any]]:
    """(inputs, params) of a declared stage's run from its arguments: the declared input arguments
    as roles, every other argument a param."""
    inputs: dict[str, str] = {}
    params: dict[str, Any] = {}
    roles = {argument: role for role, argument in declaration.inputs.items()}
    unknown = set(roles) - set(arguments)
    if unknown:
        raise TypeError(f"stage {declaration.name!r} declares inputs {sorted(unknown)} it has no argument for")
    for argument, value in arguments.items():
        role = roles.get(argument)
        if role is None:
            params[argument] = lineage_value(value)
        elif isinstance(value, (list, tuple)):
            inputs |= {f"{role}{i}": v for i, v in enumerate(value)}
        elif isinstance(value, dict):
            inputs |= {f"{role}{key}": v for key, v in value.items()}
        elif value is not None:
            inputs[role] = value
    return inputs, params


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
    """One execution of a stage, as lineage: ``with StageRun() as run: ...`` inside a declared stage
    (``stage``); ``StageRun("bench_sft", inputs, params)`` for a caller outside a task run."""

    def __init__(
        self,
        stage: str | None = None,
        inputs: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
        code_module: str | None = None,
        derived: dict[str, Any] | None = None,
    ):
        """Without ``stage``: the declared stage this task run executes, its inputs and params from
        the task's arguments. ``derived``: params the stage computes from its arguments that its
        cache policy also counts (the source data's fingerprints). ``code_module``: the project module
        whose code version the run records, for a caller outside the project's packages (a benchmark
        running a stage's worker); by default the task's module."""
        self.label = None
        if stage is None:
            task_ctx = TaskRunContext.get()
            declaration = getattr(task_ctx.task.fn, "__stage__", None) if task_ctx else None
            if declaration is None:
                raise RuntimeError("StageRun() without a stage name runs only inside a task declared with @stage")
            stage = declaration.name
            inputs, params = declared_run(task_ctx.parameters, declaration)
            self.label = label_of(task_ctx.task_run.name, stage)
        self.stage = stage
        self.inputs = dict(inputs or {})
        self.params = {**(params or {}), **(derived or {})}
        self.store = ArtifactStore()
        self.lineage = LineageStore(self.store.lineage_path)
        self.code_version = code_version(code_module or stage_module())
        self.outputs: dict[str, dict[str, Any]] = {}
        self.metric_rows: list[tuple[str | None, str, float, int | None]] = []
        self._staged: list[Path] = []
        self._resumable: list[Path] = []
        self.log = run_logger()
        self.run_id = new_run_id()
        self.tracked = None
        self.logged_by_trainer: set[str] = set()  # series a trainer already sent to the tracker itself

    def __enter__(self) -> StageRun:
        from tasks.tracking import open_tracked_run

        self.started_at = now()
        for artifact_id in self.inputs.values():
            self.store.path(artifact_id)  # fail early, naming the id, when an input is missing
        self.tracked = open_tracked_run(current_flow_run_id(), self.stage, self.label)
        return self

    def tracker_env(self) -> dict[str, str]:
        """What a worker process needs to log into this run's tracker run (empty when nothing tracks)."""
        return self.tracked.worker_env() if self.tracked else {}

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
        if self.tracked is not None:
            self.finish_tracked_run(exc_type is None)

    def finish_tracked_run(self, completed: bool) -> None:
        """The stage's metrics and lineage ids on its tracker run; a tracker that fails is a warning, never a failed stage."""
        try:
            self.tracked.finish(
                lineage_run_id=self.run_id,
                inputs=self.inputs,
                outputs=self.outputs if completed else {},
                params=self.params,
                metrics=self.metric_rows if completed else [],
                completed=completed,
                logged_by_trainer=self.logged_by_trainer,
            )
        except Exception as exc:  # noqa: BLE001 - lineage holds everything the tracker would
            self.log.warning(
                "tracking: could not write %s's run %s to %s: %s",
                self.stage,
                self.tracked.run_id,
                self.tracked.target.uri,
                exc,
            )

    def record(self, completed: bool) -> None:
        self.lineage.record_run(
            run_id=self.run_id,
            tracker=self.tracked.link() if self.tracked else None,
            stage=self.stage,
            label=self.label,
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


def is_transient(exc: BaseException) -> bool:
    """A failure of the machinery a stage runs on, which a second attempt may not meet: a busy lineage
    store, an unreachable sandbox or service, an I/O or network error, a training worker killed by a
    signal or its time limit (``TrainingFailed.transient``). A bug (AttributeError, NameError, …) or bad
    data (ValueError, LookupError, TypeError) is never retried: the same inputs fail the same way."""
    from sandbox.config import SandboxUnavailable

    if isinstance(exc, (LineageBusy, SandboxUnavailable, ConnectionError, TimeoutError)):
        return True
    if isinstance(exc, OSError) and not isinstance(
        exc, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)
    ):
        return True
    return bool(getattr(exc, "transient", False))


def retry_transient(task, task_run, state) -> bool:
    """Prefect retry condition (each stage's one retry owner): retry transient failures only."""
    try:
        state.result(raise_on_failure=True)
    except BaseException as exc:  # noqa: BLE001 - classified, not swallowed
        return is_transient(exc)
    return False
