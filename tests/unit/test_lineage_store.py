"""The lineage store in one process: its journal, schema upgrades, walks, diffs, OpenLineage
events, the graph's columns, and threads reading while another writes."""

import json
import time

import duckdb
import pytest
from lineage_fixtures import chain, record_plain_run

from storage import LineageNotFound, LineageStore
from storage.lineage import SCHEMA_VERSION, now
from storage.openlineage import lineage_events
from storage.run_diff import diff_runs, flatten


def test_a_record_whose_commit_outlived_its_journal_file_is_not_written_twice(tmp_path):
    """A writer killed after its commit but before deleting the journal file: the next access
    finds the run already there and only removes the file."""
    store = LineageStore(tmp_path / "l.duckdb")
    t = now()
    run_id = record_plain_run(store, metrics=[(None, "m", 1.0, None)], started_at=t, ended_at=t)
    entry = {
        "run": {
            "run_id": run_id,
            "stage": "s",
            "flow_run_id": None,
            "params": {},
            "code_version": "v",
            "status": "completed",
            "started_at": t.isoformat(),
            "ended_at": t.isoformat(),
        },
        "inputs": {},
        "outputs": {},
        "metrics": [[None, "m", 1.0, None]],
    }
    (store.journal / f"{time.time_ns():020d}-{run_id}.json").write_text(json.dumps(entry))
    assert len(store.pending()) == 1
    assert store.counts() == {"runs": 1, "artifacts": 0, "edges": 0, "metrics": 1}
    assert store.pending() == []


def test_an_artifact_two_runs_produced_keeps_the_metrics_of_the_run_that_made_it(tmp_path):
    """Content addressing: two RL runs that made no update write the same weights, one artifact. Its
    series is the first run's, not both runs' points interleaved."""
    store = LineageStore(tmp_path / "l.duckdb")
    output = {
        "checkpoint": {"artifact_id": "checkpoint-same", "kind": "checkpoint", "name": "rl", "uri": "x", "metadata": {}}
    }
    for steps in (2, 1):
        t = now()
        store.record_run(
            stage="grpo",
            flow_run_id=None,
            params={"max_steps": steps},
            code_version="v",
            inputs={},
            outputs=output,
            metrics=[("checkpoint-same", "steps", steps, None)]
            + [("checkpoint-same", "reward", 0.5, s) for s in range(1, steps + 1)],
            status="completed",
            started_at=t,
            ended_at=t,
        )
    assert store.metrics_of("checkpoint-same") == {"steps": 2.0}
    assert store.metric_series("checkpoint-same", "reward") == [(1, 0.5), (2, 0.5)]


def test_an_unreadable_journal_file_is_set_aside_and_reported(tmp_path, caplog):
    store = LineageStore(tmp_path / "l.duckdb")
    (store.journal / "00000000000000000001-broken.json").write_text('{"run": ')
    assert store.counts()["runs"] == 0
    assert (store.journal / "00000000000000000001-broken.rejected").exists()
    assert "unreadable" in caplog.text and "broken" in caplog.text


def test_schema_has_its_indices_and_a_version_1_file_is_upgraded(tmp_path):
    db = tmp_path / "old.duckdb"
    con = duckdb.connect(str(db))  # the first release's schema: no meta table, one index
    con.execute(
        "CREATE TABLE runs (run_id VARCHAR PRIMARY KEY, stage VARCHAR NOT NULL, flow_run_id VARCHAR, params JSON, "
        "code_version VARCHAR, status VARCHAR NOT NULL, started_at TIMESTAMPTZ, ended_at TIMESTAMPTZ)"
    )
    con.execute("INSERT INTO runs VALUES ('r-old', 'sft', NULL, '{}', 'v', 'completed', now(), now())")
    con.close()
    store = LineageStore(db)
    assert store.run("r-old")["stage"] == "sft"
    con = duckdb.connect(str(db), read_only=True)
    indices = {row[0] for row in con.execute("SELECT index_name FROM duckdb_indexes()").fetchall()}
    version = con.execute("SELECT value FROM lineage_meta WHERE key = 'schema_version'").fetchone()[0]
    con.close()
    assert {"edges_by_artifact", "edges_by_run", "runs_by_stage", "artifacts_by_name", "metrics_by_artifact"} <= indices
    assert int(version) == SCHEMA_VERSION


def test_a_version_2_file_gains_the_tracker_column_and_keeps_its_runs(tmp_path):
    db = tmp_path / "v2.duckdb"
    con = duckdb.connect(str(db))  # version 2: indexed runs, no tracker column
    con.execute(
        "CREATE TABLE runs (run_id VARCHAR PRIMARY KEY, stage VARCHAR NOT NULL, flow_run_id VARCHAR, params JSON, "
        "code_version VARCHAR, status VARCHAR NOT NULL, started_at TIMESTAMPTZ, ended_at TIMESTAMPTZ)"
    )
    con.execute("CREATE INDEX runs_by_stage ON runs (stage)")
    con.execute("CREATE TABLE lineage_meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
    con.execute("INSERT INTO lineage_meta VALUES ('schema_version', '2')")
    con.execute("INSERT INTO runs VALUES ('r-old', 'sft', NULL, '{}', 'v', 'completed', now(), now())")
    con.close()
    store = LineageStore(db)
    tracked = record_plain_run(
        store, "grpo", run_id="r-new", tracker={"kind": "mlflow", "uri": "sqlite:///m.db", "run_id": "abc"}
    )
    assert tracked == "r-new"
    assert store.run("r-old")["tracker"] is None and store.run("r-new")["tracker"]["run_id"] == "abc"
    assert {run["run_id"]: run["tracker"] for run in store.recent_runs()}["r-new"][
        "uri"
    ] == "sqlite:///m.db"  # lineage runs --json


def test_walks_diff_and_openlineage_events_answer_the_users_questions(tmp_path):
    store = LineageStore(tmp_path / "l.duckdb")
    ids = chain(store)
    up = {(l.depth, l.artifact_id, l.stage, l.parent_id, l.role) for l in store.upstream("report-e")}
    assert up == {
        (0, "report-e", "evaluate", "checkpoint-a", "model"),
        (1, "checkpoint-a", "sft", "dataset-f", "dataset"),
        (1, "checkpoint-a", "sft", "checkpoint-base", "model"),
        (2, "dataset-f", "filter", "dataset-p", "problems"),
    }
    checkpoints_from_problems = {
        l.artifact_id for l in store.downstream("dataset-p") if l.artifact_id.startswith("checkpoint-")
    }
    assert checkpoints_from_problems == {"checkpoint-a", "checkpoint-b"}
    assert {l.artifact_id for l in store.upstream("report-e", max_depth=1)} == {"report-e"}
    assert store.resolve_run("checkpoint-b") == ids["sft2"] and store.resolve_run(ids["sft"][:10]) == ids["sft"]
    with pytest.raises(LineageNotFound, match="neither a run id nor an artifact id"):
        store.resolve_run("nothing-like-it")

    diff = diff_runs(store.run(ids["sft"]), store.run(ids["sft2"]))
    changed = {row["key"]: (row["a"], row["b"]) for row in diff["params"] if not row["same"]}
    assert changed == {"sft.lr": (1e-4, 2e-5)}
    assert {row["key"]: row["delta"] for row in diff["metrics"]} == {"loss_last": 0.25, "steps": 0.0}
    assert [row["same"] for row in diff["inputs"]] == [True, True] and not diff["outputs"][0]["same"]
    assert flatten({"a": {"b": {"c": 1}}, "d": [1, 2]}) == {"a.b.c": 1, "d": [1, 2]}

    events = lineage_events(store)
    assert len(events) == 12 and [e["eventType"] for e in events[:2]] == ["START", "COMPLETE"]
    sft_end = next(
        e
        for e in events
        if e["job"]["name"] == "thinkflow.sft"
        and e["eventType"] == "COMPLETE"
        and e["outputs"][0]["name"] == "checkpoint-a"
    )
    assert {d["name"] for d in sft_end["inputs"]} == {"dataset-f", "checkpoint-base"}
    assert sft_end["outputs"][0]["facets"]["thinkflow_artifact"]["kind"] == "checkpoint"
    assert sft_end["run"]["facets"]["thinkflow_metrics"]["metrics"] == {"loss_last": 0.5, "steps": 4.0}
    assert sft_end["run"]["facets"]["parent"]["run"]["runId"] == "7e0c6b0e-58b1-4f8e-9d55-0f5b2c1d9a10"
    for event in events:
        assert set(event) == {"eventType", "eventTime", "run", "job", "inputs", "outputs", "producer", "schemaURL"}
        assert len(event["run"]["runId"]) == 36


def test_graph_columns_point_every_arrow_left_to_right():
    from storage import LineageLink
    from tasks.lineage_graph import graph_layers, trim

    up = [
        LineageLink(0, "c", "r2", "s", "b", "x"),
        LineageLink(0, "c", "r2", "s", "a", "y"),
        LineageLink(1, "b", "r1", "t", "a", "z"),
    ]
    down = [LineageLink(0, "d", "r3", "u", "c", "w")]
    layers, arrows = graph_layers("c", up, down)
    assert layers == {"c": 0, "b": -1, "a": -2, "d": 1}
    assert all(layers[parent] < layers[child] for parent, child, _ in arrows)
    kept, kept_arrows, trimmed = trim(layers, arrows, 3)
    assert trimmed and set(kept) == {"c", "b", "d"} and all(p in kept and c in kept for p, c, _ in kept_arrows)


def test_threads_of_one_process_read_while_another_writes(tmp_path):
    """DuckDB refuses a read-only connection while the same process holds a read-write one: the
    reader waits for the writer instead of failing (Prefect runs shards in threads)."""
    import threading

    store = LineageStore(tmp_path / "l.duckdb")
    writer = duckdb.connect(str(tmp_path / "l.duckdb"))
    released = threading.Timer(0.3, writer.close)
    released.start()
    started = time.monotonic()
    assert store.counts()["runs"] == 0
    assert time.monotonic() - started >= 0.25
    released.join()
