"""Lineage for the tests: writer processes (each records runs in a loop and prints the run ids it
saw committed) and a small hand-made chain of runs to walk."""

import subprocess
import sys

import duckdb
from conftest import PROJECT_ROOT

from storage import LineageStore
from storage.lineage import now

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


def record_plain_run(store: LineageStore, stage: str = "s", status: str = "completed", **fields):
    """One run with nothing but what a test sets (no params, inputs, outputs or metrics); its run id."""
    t = now()
    plain = {
        "params": {},
        "code_version": "v",
        "inputs": {},
        "outputs": {},
        "metrics": [],
        "started_at": t,
        "ended_at": t,
    }
    return store.record_run(stage=stage, flow_run_id=None, status=status, **{**plain, **fields})


def start_writer(db, name: str, count: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db), name, str(count)],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


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
        return {
            t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("runs", "artifacts", "edges", "metrics")
        }
    finally:
        con.close()


def four_writers_lose_none(tmp_path, records: int) -> None:
    """Four processes write ``records`` runs each into one file at once; every confirmed run is
    there, whole, and versions count up per name with none skipped or repeated."""
    db = tmp_path / "lineage.duckdb"
    writers = [start_writer(db, f"w{n}", records) for n in range(4)]
    confirmed = [confirmed_run_ids(w) for w in writers]
    assert [w.returncode for w in writers] == [0, 0, 0, 0], [w.stderr.read() if w.stderr else "" for w in writers]
    assert [len(c) for c in confirmed] == [records] * 4
    counts = assert_consistent(db)
    assert counts == {"runs": 4 * records, "artifacts": 4 * records, "edges": 12 * records, "metrics": 8 * records}
    con = duckdb.connect(str(db), read_only=True)
    stored = {row[0] for row in con.execute("SELECT run_id FROM runs").fetchall()}
    versions = con.execute(
        "SELECT name, min(version), max(version), count(DISTINCT version) FROM artifacts GROUP BY name ORDER BY name"
    ).fetchall()
    con.close()
    assert stored == set().union(*confirmed)
    assert versions == [
        (f"w{n}", 1, records, records) for n in range(4)
    ]  # versions count up per name, none skipped or repeated
    assert list((tmp_path / "lineage.duckdb.journal").glob("*.json")) == []


def chain(store: LineageStore) -> dict[str, str]:
    """problems → filter → sft (+ base model) → eval report; and a second sft with another lr."""
    t = now()

    def run(stage, inputs, out_id, kind, params=None, metrics=()):
        return store.record_run(
            stage=stage,
            flow_run_id="7e0c6b0e-58b1-4f8e-9d55-0f5b2c1d9a10",
            params=params or {},
            code_version="v",
            inputs=inputs,
            outputs={"out": {"artifact_id": out_id, "kind": kind, "name": stage, "uri": f"file:///{out_id}"}},
            metrics=[(out_id, k, v, None) for k, v in metrics],
            status="completed",
            started_at=t,
            ended_at=t,
        )

    ids = {
        "problems": run("load", {}, "dataset-p", "dataset"),
        "model": run("build", {}, "checkpoint-base", "checkpoint"),
    }
    ids["filter"] = run("filter", {"problems": "dataset-p"}, "dataset-f", "dataset", metrics=[("kept", 8)])
    ids["sft"] = run(
        "sft",
        {"dataset": "dataset-f", "model": "checkpoint-base"},
        "checkpoint-a",
        "checkpoint",
        {"sft": {"lr": 1e-4, "steps": 4}, "seed": 0},
        [("loss_last", 0.5), ("steps", 4)],
    )
    ids["sft2"] = run(
        "sft",
        {"dataset": "dataset-f", "model": "checkpoint-base"},
        "checkpoint-b",
        "checkpoint",
        {"sft": {"lr": 2e-5, "steps": 4}, "seed": 0},
        [("loss_last", 0.75), ("steps", 4)],
    )
    ids["eval"] = run("evaluate", {"model": "checkpoint-a"}, "report-e", "report", metrics=[("pass@1", 0.25)])
    return ids
