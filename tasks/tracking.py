"""Experiment tracking: each stage run that executes is also a run in the recipe's tracker (MLflow).

The recipe's ``tracking`` section picks the tracker; the flow's stage log (flows/runtime/stage_log.py)
makes it current for the stage it runs (``tracking_stage``), and ``StageRun`` does the rest:

- on entry it opens a tracker run named after the pipeline and stage (``TrackedRun``);
- a training stage's worker process logs to that run through TRL's own ``report_to="mlflow"``
  (``worker_env``: ``MLFLOW_TRACKING_URI`` and ``MLFLOW_RUN_ID``), so curves appear while it trains;
- on exit it logs the stage's recorded metrics (the evaluation's pass@1, calibration's counts, a
  comparison's deltas; series that no trainer logged, with their steps), the recipe settings the
  stage ran with as ``thinkflow.*`` params, and tags that point at lineage (the lineage run id, the
  input and output artifact ids, the Prefect flow run); the lineage run records the tracker run
  id in return (``thinkflow lineage runs`` shows it).

A cached stage runs nothing and opens no tracker run. Tracking never decides a result: the section
is left out of every cache key. MLflow's store defaults to ``sqlite:///THINKFLOW_HOME/mlflow.db``
(``mlflow ui --backend-store-uri`` opens it); ``pip install 'thinkflow[tracking]'`` brings the client.
"""

from __future__ import annotations

import contextvars
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_CURRENT: contextvars.ContextVar[TrackingTarget | None] = contextvars.ContextVar("thinkflow_tracking", default=None)

PARAM_VALUE_LIMIT = 6000  # MLflow refuses longer param values
TAG_PREFIX = "thinkflow."


@dataclass(frozen=True)
class TrackingTarget:
    """Where the stage now running reports: the tracker's store and experiment, and what to call the run."""

    kind: str
    uri: str
    experiment: str
    pipeline: str
    stage: str


@contextmanager
def tracking_stage(settings, home: Path, pipeline: str, stage: str) -> Iterator[None]:
    """While the block runs, stage runs report to ``settings`` (a ``TrackingConfig``); nothing when its kind is ``none``."""
    if settings is None or settings.kind == "none":
        yield
        return
    target = TrackingTarget(
        kind=settings.kind,
        uri=settings.uri or sqlite_uri(home / "mlflow.db"),
        experiment=settings.experiment or pipeline,
        pipeline=pipeline,
        stage=stage,
    )
    token = _CURRENT.set(target)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def sqlite_uri(path: Path) -> str:
    return f"sqlite:///{path.resolve()}"


def current_target() -> TrackingTarget | None:
    return _CURRENT.get()


def mlflow_client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def experiment_id(client, name: str) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name)
    except Exception:  # noqa: BLE001 - another stage created it meanwhile
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def flat_params(value: Any, prefix: str) -> dict[str, str]:
    """Nested settings as ``prefix.a.b`` -> text, each within MLflow's length limit."""
    if isinstance(value, dict):
        flat: dict[str, str] = {}
        for key, inner in value.items():
            flat.update(flat_params(inner, f"{prefix}.{key}"))
        return flat
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return {prefix: text[:PARAM_VALUE_LIMIT]}


def metric_name(artifact_role: str | None, key: str, roles: int) -> str:
    """A stage with several outputs prefixes each metric with its artifact's role; characters MLflow
    refuses become ``_`` (``pass@1`` is ``pass_at_1``)."""
    name = key if roles <= 1 or artifact_role is None else f"{artifact_role}/{key}"
    return "".join(c if c.isalnum() or c in "_-./ :" else "_" for c in name.replace("@", "_at_"))


class TrackedRun:
    """One stage run in the tracker (MLflow): opened on entry, written and closed by ``finish``."""

    def __init__(
        self, target: TrackingTarget, flow_run_id: str | None, stage: str | None = None, label: str | None = None
    ):
        """``stage``: the stage's declared name, ``label`` the flow's for this use of it (the task run is
        named after both, and so is the tracker run); the flow's label alone where they are not given."""
        from mlflow.entities import RunTag

        from tasks.stage_names import task_run_name

        self.target = target
        self.client = mlflow_client(target.uri)
        stage, label = stage or target.stage, label or target.stage
        name = f"{target.pipeline} / {task_run_name(stage, label)}"
        tags = {
            f"{TAG_PREFIX}pipeline": target.pipeline,
            f"{TAG_PREFIX}stage": stage,
            f"{TAG_PREFIX}label": label,
            "mlflow.runName": name,
        }
        if flow_run_id:
            tags[f"{TAG_PREFIX}prefect_flow_run_id"] = str(flow_run_id)
        run = self.client.create_run(experiment_id(self.client, target.experiment), tags=tags, run_name=name)
        self.run_id = run.info.run_id
        self._tag = RunTag

    def link(self) -> dict[str, str]:
        """What the lineage run records about this tracker run."""
        return {
            "kind": self.target.kind,
            "uri": self.target.uri,
            "experiment": self.target.experiment,
            "run_id": self.run_id,
        }

    def worker_env(self) -> dict[str, str]:
        """The environment a training worker needs to log into this run through TRL's MLflow callback."""
        return {
            "MLFLOW_TRACKING_URI": self.target.uri,
            "MLFLOW_RUN_ID": self.run_id,
            "MLFLOW_EXPERIMENT_NAME": self.target.experiment,
        }

    def finish(
        self,
        *,
        lineage_run_id: str,
        inputs: dict[str, str],
        outputs: dict[str, dict[str, Any]],
        params: dict[str, Any],
        metrics: list[tuple[str | None, str, float, int | None]],
        completed: bool,
        logged_by_trainer: set[str],
    ) -> None:
        """Tags pointing at lineage, the recipe settings as params, the stage's metrics (series a trainer
        already logged are skipped), and the run's end state."""
        from mlflow.entities import Metric, Param

        roles = {info["artifact_id"]: role for role, info in outputs.items()}
        tags = {
            f"{TAG_PREFIX}lineage_run_id": lineage_run_id,
            f"{TAG_PREFIX}status": "completed" if completed else "failed",
        }
        tags.update({f"{TAG_PREFIX}input.{role}": artifact_id for role, artifact_id in inputs.items()})
        tags.update({f"{TAG_PREFIX}output.{role}": info["artifact_id"] for role, info in outputs.items()})
        existing = self.client.get_run(self.run_id).data.params
        param_rows = [
            Param(key, value) for key, value in flat_params(params, "thinkflow").items() if key not in existing
        ]
        timestamp = _now_ms()
        metric_rows = []
        for artifact_id, key, value, step in metrics:
            if not math.isfinite(value) or (step is not None and key in logged_by_trainer):
                continue
            metric_rows.append(
                Metric(metric_name(roles.get(artifact_id), key, len(roles)), float(value), timestamp, int(step or 0))
            )
        self.client.log_batch(self.run_id, tags=[self._tag(key, value) for key, value in tags.items()])
        for start in range(0, len(param_rows), 100):  # MLflow's batch limits: 100 params, 1000 metrics
            self.client.log_batch(self.run_id, params=param_rows[start : start + 100])
        for start in range(0, len(metric_rows), 1000):
            self.client.log_batch(self.run_id, metrics=metric_rows[start : start + 1000])
        self.client.set_terminated(self.run_id, "FINISHED" if completed else "FAILED")


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


def open_tracked_run(flow_run_id: str | None, stage: str | None = None, label: str | None = None) -> TrackedRun | None:
    """A tracker run for the stage now starting, when the recipe tracks; None otherwise, or when the
    tracker cannot be reached (a warning: lineage records the stage either way)."""
    target = current_target()
    if target is None:
        return None
    try:
        return TrackedRun(target, flow_run_id, stage, label)
    except Exception as exc:  # noqa: BLE001
        from tasks.progress import progress_logger

        progress_logger().warning(
            "tracking: could not open a run for %s in %s (%s): %s", target.stage, target.uri, target.experiment, exc
        )
        return None


def require_tracker(settings) -> None:
    """Fail before anything runs when the recipe asks for a tracker whose client is not installed."""
    if settings.kind == "mlflow":
        import importlib.util

        from tasks.sections import RecipeError

        if importlib.util.find_spec("mlflow") is None:
            raise RecipeError(
                "tracking.kind is mlflow but MLflow is not installed: pip install 'thinkflow[tracking]' "
                "(mlflow-skinny and alembic), or set tracking.kind: none"
            )
