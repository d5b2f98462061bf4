"""The lineage store under concurrent writer processes, killed writers and a held lock, and the
lineage CLI and bench on top."""

import json
import random
import signal
import subprocess
import sys
import time

import duckdb
import pytest
from lineage_fixtures import (
    assert_consistent,
    chain,
    confirmed_run_ids,
    four_writers_lose_none,
    record_plain_run,
    start_writer,
)
from typer.testing import CliRunner

from storage import LineageBusy, LineageStore
from storage.lineage import WRITER_LOCK


def test_four_processes_writing_records_at_once_lose_none(tmp_path):
    """250 records a writer (~10 s on 2 cores); 1,000 in slow/test_lineage_writers_at_scale.py."""
    four_writers_lose_none(tmp_path, 250)


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


def test_a_writer_that_cannot_get_its_turn_says_so_and_keeps_the_record(tmp_path):
    store = LineageStore(tmp_path / "l.duckdb", lock_timeout_s=0.3)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time\nf = open(sys.argv[1], 'a')\n"
            "fcntl.flock(f, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(30)",
            str(store.journal / WRITER_LOCK),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LineageBusy, match="kept in"):
            record_plain_run(store)
        assert len(store.pending()) == 1
    finally:
        holder.kill()
        holder.wait()
    assert store.counts()["runs"] == 1 and store.pending() == []


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
    assert as_json["stage"] == "sft" and {l["parent_id"] for l in as_json["upstream"]} == {
        "dataset-f",
        "checkpoint-base",
        "dataset-p",
    }
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
    later = runner.invoke(
        app, ["lineage", "export", "-o", str(tmp_path / "none.jsonl"), "--since", "2999-01-01T00:00:00", "--json"]
    )
    assert json.loads(later.output)["events"] == 0


def test_bench_lineage_runs_small(capsys):
    from flows.cli.bench import load_benchmark

    result = load_benchmark("lineage_scale").main(edges=3000, stages=5, shared=4, repeats=1, as_json=True)
    assert result["edges"] >= 3000 and result["queries"][0]["links"] == 2 * 5  # 5 steps, two inputs each
    chain, wide = result["queries"][1]["links"], result["queries"][2]["links"]
    assert wide > chain > 0  # a shared artifact reaches every chain that read it; a chain's first artifact, one chain
