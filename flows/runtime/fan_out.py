"""Fan-out stages on the task runner the recipe names (``runner``): threads in the flow's process
by default, a Dask cluster (an address, or a local cluster started for the stage), or Ray.

A fan-out stage with another runner runs as a subflow that carries that runner, so the rest of
the pipeline (training, evaluation) stays where the flow runs. The task travels by import path,
its arguments are ids and config dicts: nothing heavier crosses to a worker.
"""

from __future__ import annotations

import importlib
from typing import Any

from prefect import flow

from tasks.recipe import RecipeError, RunnerConfig
from tasks.stage_run import task_run_name


def build_task_runner(cfg: RunnerConfig):
    """The Dask or Ray task runner a fan-out subflow carries (threads need none: the flow's own)."""
    if cfg.kind == "dask":
        try:
            from prefect_dask import DaskTaskRunner
        except ImportError:
            raise RecipeError("runner.kind=dask needs prefect-dask: pip install 'thinkflow[dask]'") from None
        if cfg.address:
            return DaskTaskRunner(address=cfg.address)
        return DaskTaskRunner(
            cluster_kwargs={
                "n_workers": cfg.workers,
                "threads_per_worker": 1,
                "processes": True,
                "dashboard_address": None,
            }
        )
    try:
        from prefect_ray import RayTaskRunner
    except ImportError:
        raise RecipeError("runner.kind=ray needs prefect-ray: pip install 'thinkflow[ray]'") from None
    if cfg.address:
        return RayTaskRunner(address=cfg.address)
    # a local instance for the stage, shut down after it: `workers` CPUs, on loopback only
    return RayTaskRunner(
        init_kwargs={
            "num_cpus": cfg.workers,
            "include_dashboard": False,
            "_node_ip_address": "127.0.0.1",
            "log_to_driver": False,
        }
    )


def task_path(task) -> str:
    return f"{task.fn.__module__}:{task.fn.__name__}"


def task_at(path: str):
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def submit_shards(task, shards: int, parallel: int, arguments: dict[str, Any], label: str) -> list[tuple[str, bool]]:
    """``task`` once per shard, ``parallel`` at a time on the current flow's task runner:
    (artifact id, came from cache) per shard, in order. Shard i's task run is "stage: label i/n"."""
    outcomes = []
    for start in range(0, shards, parallel):
        futures = [
            task.with_options(task_run_name=task_run_name(task.name, f"{label} {index + 1}/{shards}")).submit(
                shard=index, **arguments
            )
            for index in range(start, min(start + parallel, shards))
        ]
        for future in futures:
            future.wait()
            outcomes.append((future.state.result(raise_on_failure=True), future.state.name == "Cached"))
    return outcomes


@flow(name="fan-out")
def fan_out(task: str, shards: int, parallel: int, arguments: dict[str, Any], label: str) -> list[tuple[str, bool]]:
    """The shards of one stage on this subflow's task runner (see ``run_fan_out``)."""
    return submit_shards(task_at(task), shards, parallel, arguments, label)


def run_fan_out(
    cfg: RunnerConfig, label: str, task, shards: int, parallel: int, arguments: dict[str, Any]
) -> list[tuple[str, bool]]:
    if cfg.kind == "thread":
        return submit_shards(task, shards, parallel, arguments, label)
    subflow = fan_out.with_options(name=f"fan-out: {label}", task_runner=build_task_runner(cfg))
    return [tuple(outcome) for outcome in subflow(task_path(task), shards, parallel, arguments, label)]
