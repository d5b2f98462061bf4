"""A thinking-midtraining run killed part-way through annotation redoes only the unfinished shards
(~80 s on 2 cores: two flow subprocesses against a served annotator)."""

import json
import os
import signal
import subprocess
import sys
import time

from conftest import PROJECT_ROOT

from tasks.annotator_server import AnnotatorServer, Faults
from tasks.thinking import strip_thoughts

PROJECT = str(PROJECT_ROOT)


def run_flow(home, prefect_home, overrides, wait=True):
    env = {**os.environ, "THINKFLOW_HOME": str(home), "PREFECT_HOME": str(prefect_home)}
    command = [
        sys.executable,
        "-m",
        "flows.cli",
        "run",
        "thinking-midtraining",
        "--config",
        "configs/tiny.yaml",
        "--json",
    ]
    for assignment in overrides:
        command += ["--set", assignment]
    process = subprocess.Popen(
        command, cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, text=True
    )
    if not wait:
        return process
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def shard_runs(home):
    from storage import LineageStore

    runs = LineageStore(home / "lineage.duckdb").runs_of_stage("annotate_corpus_shard")
    return [(r["params"]["shard"], r["status"]) for r in runs]


def test_killed_annotation_redoes_only_unfinished_shards(tiny_model_dir, tmp_path):
    from storage import ArtifactStore, LineageStore

    home, prefect_home = tmp_path / "home", tmp_path / "prefect"
    settings = ["annotator.kind=openai", "annotator.model=tiny", "annotator.cache=false", "corpus.parallel_shards=1"]
    with AnnotatorServer(tiny_model_dir, "tiny", faults=Faults(stall_after=8)) as server:
        process = run_flow(home, prefect_home, settings + [f"annotator.base_url={server.url}"], wait=False)
        deadline = time.monotonic() + 240
        while server.stats.as_dict()["stalled"] == 0:  # shard 0 (at most 8 requests) is done; shard 1 hangs
            assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()[-3000:]
            time.sleep(0.2)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        first_requests = server.stats.as_dict()["received"]
    finished_before = [shard for shard, status in shard_runs(home) if status == "completed"]
    assert finished_before == [0]

    with AnnotatorServer(tiny_model_dir, "tiny") as server:
        summary = run_flow(home, prefect_home, settings + [f"annotator.base_url={server.url}"])
        second_requests = server.stats.as_dict()["received"]
    rerun = [shard for shard, _ in shard_runs(home)][len(finished_before) :]
    assert rerun == [1, 2]  # shard 0 came from Prefect's cache, untouched
    annotate = [s for s in summary["stages"] if s["label"].startswith("annotate")][0]
    assert annotate["label"] == "annotate (3 shards)" and not annotate["cached"]
    lineage = LineageStore(home / "lineage.duckdb")
    requests = [lineage.metrics_of(a)["requests"] for a in annotate["artifact_ids"]]
    assert second_requests == requests[1] + requests[2]  # the annotator was asked only for the unfinished shards
    assert first_requests > requests[0]  # the killed run had got into shard 1
    corpus = [s for s in summary["stages"] if s["label"] == "corpus"][0]
    metrics = corpus["metrics"][corpus["artifact_ids"][0]]
    assert (
        metrics["chunks"] == 12
        and metrics["accepted"] + sum(v for k, v in metrics.items() if k.startswith("rejected_")) == 12
    )
    sft_rows = (ArtifactStore(home).path(corpus["artifact_ids"][0]) / "train.jsonl").read_text().splitlines()
    for row in map(json.loads, sft_rows):
        assert strip_thoughts(row["text"]) == row["chunk"] and "<think>" in row["text"]
