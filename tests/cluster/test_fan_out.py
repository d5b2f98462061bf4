"""Fan-out on real clusters: the tiny pipeline's solution sampling and cold-start shards on the
workers of a local Dask cluster and of a Ray cluster started by `ray start`, the rest in the flow
(~1 min each on 2 cores; the thread runner runs in integration/test_pipeline.py). Each test
asserts from the cluster's own bookkeeping that the five shards ran on its workers."""

import os
import subprocess
import time
from pathlib import Path

import pytest
from conftest import PROJECT_ROOT, free_port

SHARD_STAGES = {"solutions (2 shards)", "cold-start (3 shards)"}


def assert_shards_ran_in_the_flow(summary, home):
    from storage import LineageStore

    shards = {s["label"]: s for s in summary["stages"] if "shards)" in s["label"]}
    assert set(shards) == SHARD_STAGES and not any(s["cached"] for s in shards.values())
    lineage = LineageStore(home / "lineage.duckdb")
    assert (
        len(lineage.runs_of_stage("sample_solutions_shard")) == 2 and len(lineage.runs_of_stage("coldstart_shard")) == 3
    )
    assert summary["stages"][-1]["label"] == "compare"


def test_the_tiny_pipelines_fan_out_runs_on_a_local_dask_cluster(prefect_harness, home):
    from distributed import Client, LocalCluster

    from flows.think_anywhere import think_anywhere

    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        summary = think_anywhere(
            config=str(PROJECT_ROOT / "configs" / "tiny.yaml"),
            overrides=["runner.kind=dask", f"runner.address={cluster.scheduler_address}"],
        )
        executed = client.run(lambda dask_worker: (dask_worker.state.executed_count, os.getpid()))
    assert_shards_ran_in_the_flow(summary, home)
    assert sum(count for count, _ in executed.values()) == 5  # every shard ran on a Dask worker, nothing else did


@pytest.fixture
def ray_cluster(tmp_path, monkeypatch):
    """A one-node Ray cluster (2 CPUs, loopback) started with `ray start --head`, stopped after."""
    pytest.importorskip("ray", reason="the Ray fan-out needs the ray extra: pip install 'thinkflow[ray]'")
    ray = Path(os.environ.get("VIRTUAL_ENV", Path(__import__("sys").executable).parent.parent)) / "bin" / "ray"
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.setenv("HOME", str(tmp_path))  # Ray keeps its auth token under ~/.ray: the driver reads the same one
    port, dashboard = free_port(), free_port()
    subprocess.run(
        [
            str(ray),
            "start",
            "--head",
            "--num-cpus",
            "2",
            "--node-ip-address",
            "127.0.0.1",
            "--port",
            str(port),
            "--dashboard-host",
            "127.0.0.1",
            "--dashboard-port",
            str(dashboard),
            "--disable-usage-stats",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    try:
        yield f"127.0.0.1:{port}", f"http://127.0.0.1:{dashboard}"
    finally:
        subprocess.run([str(ray), "stop", "--force"], capture_output=True, timeout=120)


def finished_ray_tasks(dashboard: str, expected: int) -> list:
    from ray.util.state import list_tasks

    tasks = []
    for _ in range(30):  # the state API sees a task a few seconds after it finished
        tasks = list_tasks(address=dashboard, filters=[("state", "=", "FINISHED")], detail=True, limit=1000)
        if len(tasks) >= expected:
            break
        time.sleep(1)
    return tasks


def test_the_tiny_pipelines_fan_out_runs_on_a_ray_cluster(prefect_harness, home, ray_cluster):
    from flows.think_anywhere import think_anywhere

    address, dashboard = ray_cluster
    summary = think_anywhere(
        config=str(PROJECT_ROOT / "configs" / "tiny.yaml"), overrides=["runner.kind=ray", f"runner.address={address}"]
    )
    assert_shards_ran_in_the_flow(summary, home)
    tasks = finished_ray_tasks(dashboard, expected=5)
    assert len(tasks) == 5, [t.name for t in tasks]  # the five shards, and nothing else, ran as Ray tasks
    assert all(t.worker_pid and t.worker_pid != os.getpid() for t in tasks)  # in Ray's worker processes, not the flow's


def test_a_ray_runner_without_an_address_starts_a_local_instance_and_shuts_it_down(prefect_harness):
    pytest.importorskip("ray", reason="needs the ray extra: pip install 'thinkflow[ray]'")
    import ray
    from prefect import flow, task

    from flows.runtime.fan_out import build_task_runner
    from tasks.recipe import RunnerConfig

    @task
    def where() -> tuple[int, float]:
        return os.getpid(), ray.cluster_resources().get("CPU", 0)

    @flow(task_runner=build_task_runner(RunnerConfig(kind="ray", workers=2)))
    def probe():
        return [future.result() for future in [where.submit() for _ in range(2)]]

    answers = probe()
    assert all(pid != os.getpid() and cpus == 2 for pid, cpus in answers)  # Ray workers of a 2-CPU instance
    assert not ray.is_initialized()
    left = subprocess.run(["pgrep", "-f", "raylet"], capture_output=True, text=True).stdout.split()
    assert left == [], f"a Ray process outlived the stage: {left}"
