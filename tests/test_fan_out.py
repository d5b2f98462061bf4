"""Fan-out stages on the task runner the recipe names: the tiny pipeline's solution sampling and
cold-start shards on a real local Dask cluster (worker processes), the rest in the flow."""

import importlib.util

import pytest

from tests.conftest import PROJECT_ROOT


def test_runner_config_is_validated_and_a_missing_extra_is_named():
    from flows.fan_out import build_task_runner, task_at, task_path
    from tasks.coldstart import build_coldstart_shard
    from tasks.recipe import RecipeError, RunnerConfig, load_recipe

    with pytest.raises(RecipeError, match="runner.kind"):
        load_recipe(PROJECT_ROOT / "configs" / "tiny.yaml", ["runner.kind=spark"])
    assert task_at(task_path(build_coldstart_shard)) is build_coldstart_shard
    if importlib.util.find_spec("prefect_ray") is None:
        with pytest.raises(RecipeError, match=r"pip install 'thinkflow\[ray\]'"):
            build_task_runner(RunnerConfig(kind="ray"))


@pytest.mark.integration
@pytest.mark.slow  # ~55 s on 2 cores; the thread runner's fan-out runs in every default run (test_pipeline)
def test_the_tiny_pipelines_fan_out_runs_on_a_local_dask_cluster(prefect_harness, home):
    from distributed import Client, LocalCluster

    from flows.think_anywhere import think_anywhere
    from storage import LineageStore

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, Client(cluster) as client:
        summary = think_anywhere(config=str(PROJECT_ROOT / "configs" / "tiny.yaml"),
                                 overrides=["runner.kind=dask", f"runner.address={cluster.scheduler_address}"])
        executed = client.run(lambda dask_worker: (dask_worker.state.executed_count, __import__("os").getpid()))
    shards = {s["stage"]: s for s in summary["stages"] if "shards)" in s["stage"]}
    assert set(shards) == {"solutions (2 shards)", "cold-start (3 shards)"} and not any(s["cached"] for s in shards.values())
    assert sum(count for count, _ in executed.values()) == 5  # every shard ran on a Dask worker, nothing else did
    lineage = LineageStore(home / "lineage.duckdb")
    assert len(lineage.runs_of_stage("sample_solutions_shard")) == 2 and len(lineage.runs_of_stage("coldstart_shard")) == 3
    assert summary["stages"][-1]["stage"] == "compare"
