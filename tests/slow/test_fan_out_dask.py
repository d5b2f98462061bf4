"""Fan-out on a real local Dask cluster: the tiny pipeline's solution sampling and cold-start shards
on worker processes, the rest in the flow (~55 s on 2 cores; the thread runner runs by default in
integration/test_pipeline.py)."""

from conftest import PROJECT_ROOT


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
