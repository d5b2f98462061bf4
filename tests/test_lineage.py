"""The lineage store under concurrent writers and killed processes, its queries, and the CLI on top."""

import json
import random
import signal
import subprocess
import sys
import time

import duckdb
import pytest
from typer.testing import CliRunner

from storage import LineageBusy, LineageNotFound, LineageStore
from storage.lineage import SCHEMA_VERSION, WRITER_LOCK, now
from storage.openlineage import lineage_events
from storage.run_diff import diff_runs, flatten
from tests.conftest import PROJECT_ROOT

# One record = 1 run, 2 input edges, 1 output edge + artifact, 2 metrics. Prints each run id once
# record_run has returned, so the test knows which records were confirmed before a kill.
WRITER = """
import sys
from storage.lineage import LineageStore, now
db, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = LineageStore(db)
i = 0
while count < 0 or i < count:
    t = now()
    run_id = store.record_run(
        stage=name, flow_run_id=None, params={"i": i, "writer": name}, code_version="v",
        inputs={"model": "checkpoint-shared", "data": f"dataset-{name}-{i - 1}"},
        outputs={"out": {"artifact_id": f"dataset-{name}-{i}", "kind": "dataset", "name": name, "uri": "file:///x"}},
        metrics=[(f"dataset-{name}-{i}", "i", i, None), (None, "loss", 1.0, i)],
        status="completed", started_at=t, ended_at=t)
    print(run_id, flush=True)
    i += 1
"""


def start_writer(db, name: str, count: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(db), name, str(count)], cwd=PROJECT_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def confirmed_run_ids(process: subprocess.Popen) -> set[str]:
    out, _ = process.communicate()
    return {line for line in out.splitlines() if len(line) == 32}  # a line cut by a kill is not a confirmation


def assert_consistent(db) -> dict[str, int]:
    """Every run has exactly its 2 inputs, 1 output, 1 artifact and 2 metrics: no half-written record."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        shapes = con.execute("""
            SELECT r.run_id,
                   (SELECT count(*) FROM edges e WHERE e.run_id = r.run_id AND e.direction = 'input'),
                   (SELECT count(*) FROM edges e WHERE e.run_id = r.run_id AND e.direction = 'output'),
                   (SELECT count(*) FROM artifacts a WHERE a.created_by_run = r.run_id),
                   (SELECT count(*) FROM metrics m WHERE m.run_id = r.run_id)
            FROM runs r""").fetchall()
        bad = [row for row in shapes if row[1:] != (2, 1, 1, 2)]
        assert not bad, f"half-written runs: {bad[:5]}"
        orphans = con.execute("SELECT count(*) FROM edges WHERE run_id NOT IN (SELECT run_id FROM runs)").fetchone()[0]
        assert orphans == 0
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("runs", "artifacts", "edges", "metrics")}
    finally:
        con.close()


@pytest.mark.integration
@pytest.mark.parametrize("records", [pytest.param(250, id="250"), pytest.param(1000, id="1000", marks=pytest.mark.slow)])
def test_four_processes_writing_records_at_once_lose_none(tmp_path, records):
    """250 records a writer in the default run (~10 s on 2 cores), 1,000 with ``slow`` (~40 s)."""
    db = tmp_path / "lineage.duckdb"
    writers = [start_writer(db, f"w{n}", records) for n in range(4)]
    confirmed = [confirmed_run_ids(w) for w in writers]
    assert [w.returncode for w in writers] == [0, 0, 0, 0], [w.stderr.read() if w.stderr else "" for w in writers]
    assert [len(c) for c in confirmed] == [records] * 4
    counts = assert_consistent(db)
    assert counts == {"runs": 4 * records, "artifacts": 4 * records, "edges": 12 * records, "metrics": 8 * records}
    con = duckdb.connect(str(db), read_only=True)
    stored = {row[0] for row in con.execute("SELECT run_id FROM runs").fetchall()}
    versions = con.execute("SELECT name, min(version), max(version), count(DISTINCT version) FROM artifacts GROUP BY name ORDER BY name").fetchall()
    con.close()
    assert stored == set().union(*confirmed)
    assert versions == [(f"w{n}", 1, records, records) for n in range(4)]  # versions count up per name, none skipped or repeated
    assert list((tmp_path / "lineage.duckdb.journal").glob("*.json")) == []


@pytest.mark.integration
def test_writers_killed_mid_write_leave_the_database_openable_and_consistent(tmp_path):
    db = tmp_path / "lineage.duckdb"
    LineageStore(db)
    rng = random.Random(7)
    confirmed: set[str] = set()
    writers = {f"k{n}": start_writer(db, f"k{n}", -1) for n in range(3)}
    deadline = time.monotonic() + 8
    kills = 0
    while time.monotonic() < deadline:
        time.sleep(rng.uniform(0.2, 0.6))
        name = rng.choice(sorted(writers))
        writers[name].send_signal(signal.SIGKILL)
        confirmed |= confirmed_run_ids(writers[name])
        kills += 1
        writers[name] = start_writer(db, f"{name}r{kills}", -1)
    for writer in writers.values():
        writer.send_signal(signal.SIGKILL)
        confirmed |= confirmed_run_ids(writer)
    assert kills >= 8 and len(confirmed) > 50
    duckdb.connect(str(db)).close()  # openable as it was left, before any recovery of ours runs
    assert_consistent(db)
    store = LineageStore(db)  # ingests what killed writers had journalled but not committed
    counts = assert_consistent(db)
    stored = {row["run_id"] for row in store.recent_runs(limit=10**6)}
    assert confirmed <= stored, f"{len(confirmed - stored)} confirmed records lost"
    assert counts["runs"] == len(stored) and not store.pending()


def test_a_record_whose_commit_outlived_its_journal_file_is_not_written_twice(tmp_path):
    """A writer killed after its commit but before deleting the journal file: the next access
    finds the run already there and only removes the file."""
    store = LineageStore(tmp_path / "l.duckdb")
    t = now()
    run_id = store.record_run(stage="s", flow_run_id=None, params={}, code_version="v", inputs={}, outputs={},
                              metrics=[(None, "m", 1.0, None)], status="completed", started_at=t, ended_at=t)
    entry = {"run": {"run_id": run_id, "stage": "s", "flow_run_id": None, "params": {}, "code_version": "v", "status": "completed",
                     "started_at": t.isoformat(), "ended_at": t.isoformat()}, "inputs": {}, "outputs": {}, "metrics": [[None, "m", 1.0, None]]}
    (store.journal / f"{time.time_ns():020d}-{run_id}.json").write_text(json.dumps(entry))
    assert len(store.pending()) == 1
    assert store.counts() == {"runs": 1, "artifacts": 0, "edges": 0, "metrics": 1}
    assert store.pending() == []


def test_an_unreadable_journal_file_is_set_aside_and_reported(tmp_path, caplog):
    store = LineageStore(tmp_path / "l.duckdb")
    (store.journal / "00000000000000000001-broken.json").write_text('{"run": ')
    assert store.counts()["runs"] == 0
    assert (store.journal / "00000000000000000001-broken.rejected").exists()
    assert "unreadable" in caplog.text and "broken" in caplog.text


def test_a_writer_that_cannot_get_its_turn_says_so_and_keeps_the_record(tmp_path):
    store = LineageStore(tmp_path / "l.duckdb", lock_timeout_s=0.3)
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time\nf = open(sys.argv[1], 'a')\n"
                               "fcntl.flock(f, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(30)",
                               str(store.journal / WRITER_LOCK)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        t = now()
        with pytest.raises(LineageBusy, match="kept in"):
            store.record_run(stage="s", flow_run_id=None, params={}, code_version="v", inputs={}, outputs={}, metrics=[],
                             status="completed", started_at=t, ended_at=t)
        assert len(store.pending()) == 1
    finally:
        holder.kill()
        holder.wait()
    assert store.counts()["runs"] == 1 and store.pending() == []


def test_schema_has_its_indices_and_a_version_1_file_is_upgraded(tmp_path):
    db = tmp_path / "old.duckdb"
    con = duckdb.connect(str(db))  # the first release's schema: no meta table, one index
    con.execute("CREATE TABLE runs (run_id VARCHAR PRIMARY KEY, stage VARCHAR NOT NULL, flow_run_id VARCHAR, params JSON, "
                "code_version VARCHAR, status VARCHAR NOT NULL, started_at TIMESTAMPTZ, ended_at TIMESTAMPTZ)")
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


def chain(store: LineageStore) -> dict[str, str]:
    """problems → filter → sft (+ base model) → eval report; and a second sft with another lr."""
    t = now()

    def run(stage, inputs, out_id, kind, params=None, metrics=()):
        return store.record_run(stage=stage, flow_run_id="7e0c6b0e-58b1-4f8e-9d55-0f5b2c1d9a10", params=params or {}, code_version="v",
                                inputs=inputs, outputs={"out": {"artifact_id": out_id, "kind": kind, "name": stage, "uri": f"file:///{out_id}"}},
                                metrics=[(out_id, k, v, None) for k, v in metrics], status="completed", started_at=t, ended_at=t)

    ids = {"problems": run("load", {}, "dataset-p", "dataset"), "model": run("build", {}, "checkpoint-base", "checkpoint")}
    ids["filter"] = run("filter", {"problems": "dataset-p"}, "dataset-f", "dataset", metrics=[("kept", 8)])
    ids["sft"] = run("sft", {"dataset": "dataset-f", "model": "checkpoint-base"}, "checkpoint-a", "checkpoint",
                     {"sft": {"lr": 1e-4, "steps": 4}, "seed": 0}, [("loss_last", 0.5), ("steps", 4)])
    ids["sft2"] = run("sft", {"dataset": "dataset-f", "model": "checkpoint-base"}, "checkpoint-b", "checkpoint",
                      {"sft": {"lr": 2e-5, "steps": 4}, "seed": 0}, [("loss_last", 0.75), ("steps", 4)])
    ids["eval"] = run("evaluate", {"model": "checkpoint-a"}, "report-e", "report", metrics=[("pass@1", 0.25)])
    return ids


def test_walks_diff_and_openlineage_events_answer_the_users_questions(tmp_path):
    store = LineageStore(tmp_path / "l.duckdb")
    ids = chain(store)
    up = {(l.depth, l.artifact_id, l.stage, l.parent_id, l.role) for l in store.upstream("report-e")}
    assert up == {(0, "report-e", "evaluate", "checkpoint-a", "model"), (1, "checkpoint-a", "sft", "dataset-f", "dataset"),
                  (1, "checkpoint-a", "sft", "checkpoint-base", "model"), (2, "dataset-f", "filter", "dataset-p", "problems")}
    checkpoints_from_problems = {l.artifact_id for l in store.downstream("dataset-p") if l.artifact_id.startswith("checkpoint-")}
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
    sft_end = next(e for e in events if e["job"]["name"] == "thinkflow.sft" and e["eventType"] == "COMPLETE"
                   and e["outputs"][0]["name"] == "checkpoint-a")
    assert {d["name"] for d in sft_end["inputs"]} == {"dataset-f", "checkpoint-base"}
    assert sft_end["outputs"][0]["facets"]["thinkflow_artifact"]["kind"] == "checkpoint"
    assert sft_end["run"]["facets"]["thinkflow_metrics"]["metrics"] == {"loss_last": 0.5, "steps": 4.0}
    assert sft_end["run"]["facets"]["parent"]["run"]["runId"] == "7e0c6b0e-58b1-4f8e-9d55-0f5b2c1d9a10"
    for event in events:
        assert set(event) == {"eventType", "eventTime", "run", "job", "inputs", "outputs", "producer", "schemaURL"}
        assert len(event["run"]["runId"]) == 36


def test_lineage_commands_print_trees_tables_json_graphs_and_events(tmp_path, home):
    from flows.cli import app

    store = LineageStore(home / "lineage.duckdb")
    ids = chain(store)
    runner = CliRunner()
    shown = runner.invoke(app, ["lineage", "show", "checkpoint-a"])
    assert shown.exit_code == 0, shown.output
    assert "made from" in shown.output and "made into" in shown.output and "← sft (dataset) dataset-f" in shown.output
    assert "→ evaluate (out) report-e" in shown.output and "loss_last = 0.5" in shown.output
    as_json = json.loads(runner.invoke(app, ["lineage", "show", "checkpoint-a", "--json"]).output)
    assert as_json["stage"] == "sft" and {l["parent_id"] for l in as_json["upstream"]} == {"dataset-f", "checkpoint-base", "dataset-p"}
    down = json.loads(runner.invoke(app, ["lineage", "downstream", "dataset-p", "--json"]).output)
    assert {l["artifact_id"] for l in down} == {"dataset-f", "checkpoint-a", "checkpoint-b", "report-e"}
    diff = runner.invoke(app, ["lineage", "diff", "checkpoint-a", ids["sft2"]])
    assert diff.exit_code == 0 and "sft.lr" in diff.output and "+0.25" in diff.output and "seed" not in diff.output
    assert "seed" in runner.invoke(app, ["lineage", "diff", "checkpoint-a", ids["sft2"], "--all"]).output
    runs = json.loads(runner.invoke(app, ["lineage", "runs", "--stage", "sft", "--json"]).output)
    assert {r["run_id"] for r in runs} == {ids["sft"], ids["sft2"]}
    missing = runner.invoke(app, ["lineage", "diff", "checkpoint-a", "zzz"])
    assert missing.exit_code == 2 and "'zzz' is neither a run id nor an artifact id" in missing.output
    assert runner.invoke(app, ["lineage", "show", "dataset-nope"]).exit_code == 2

    graph = runner.invoke(app, ["lineage", "graph", "checkpoint-a", "-o", str(tmp_path / "g.png")])
    assert graph.exit_code == 0 and (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    exported = runner.invoke(app, ["lineage", "export", "-o", str(tmp_path / "events.jsonl"), "--json"])
    assert json.loads(exported.output) == {"events": 12, "runs": 6, "output": str(tmp_path / "events.jsonl")}
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    assert len(lines) == 12 and json.loads(lines[-1])["eventType"] == "COMPLETE"
    later = runner.invoke(app, ["lineage", "export", "-o", str(tmp_path / "none.jsonl"), "--since", "2999-01-01T00:00:00", "--json"])
    assert json.loads(later.output)["events"] == 0


def test_graph_columns_point_every_arrow_left_to_right():
    from storage import LineageLink
    from tasks.lineage_graph import graph_layers, trim

    up = [LineageLink(0, "c", "r2", "s", "b", "x"), LineageLink(0, "c", "r2", "s", "a", "y"), LineageLink(1, "b", "r1", "t", "a", "z")]
    down = [LineageLink(0, "d", "r3", "u", "c", "w")]
    layers, arrows = graph_layers("c", up, down)
    assert layers == {"c": 0, "b": -1, "a": -2, "d": 1}
    assert all(layers[parent] < layers[child] for parent, child, _ in arrows)
    kept, kept_arrows, trimmed = trim(layers, arrows, 3)
    assert trimmed and set(kept) == {"c", "b", "d"} and all(p in kept and c in kept for p, c, _ in kept_arrows)


def test_bench_lineage_runs_small(capsys):
    from flows.cli import load_benchmark

    result = load_benchmark("lineage_scale").main(edges=3000, stages=5, shared=4, repeats=1, as_json=True)
    assert result["edges"] >= 3000 and result["queries"][0]["links"] == 2 * 5  # 5 steps, two inputs each
    assert all(row["store_ms"] > 0 for row in result["queries"])


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
