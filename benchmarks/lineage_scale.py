"""Lineage queries at scale: ``thinkflow bench lineage`` (or run this file).

Builds a lineage store with ``edges`` edges (default 1 M) shaped like many pipeline runs: chains
of ``stages`` stage runs, each reading the previous stage's artifact and one of ``shared`` widely
used artifacts (base models, problem sources) and writing one artifact, so every run has 3
edges. Then times, through :class:`LineageStore` exactly as the CLI calls it (open the file, query,
close), and on a connection already open:

- upstream of a chain's last artifact (what produced this checkpoint: ``stages`` steps deep),
- downstream of a chain's first artifact (what came from this dataset),
- downstream of a shared artifact (everything made from one base model: a wide answer),

next to the whole walk as one recursive query (what the store did before, and still does past a
wide step: hash joins over the whole edge table at every step), and the store's size on disk. Target: upstream and downstream ≤ 50 ms on 2 cores.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import tempfile
import time
from pathlib import Path

import duckdb
from rich.console import Console
from rich.table import Table

from storage.lineage import LineageStore, now
from storage.lineage_walk import recursive_walk, walk_lineage


def artifact_id(index: int) -> str:
    return "dataset-" + hashlib.md5(f"a{index}".encode()).hexdigest()[:16]


def shared_id(index: int) -> str:
    return "checkpoint-" + hashlib.md5(f"s{index}".encode()).hexdigest()[:16]


def build_store(path: Path, edges: int, stages: int, shared: int) -> int:
    """Bulk-load the synthetic graph with SQL (minutes through ``record_run``); returns the run count."""
    LineageStore(path)  # the real schema and indices
    runs = -(-edges // 3)  # at least ``edges``
    a = "'dataset-' || substr(md5('a' || i), 1, 16)"
    prev = "'dataset-' || substr(md5('a' || (i - 1)), 1, 16)"
    s = f"'checkpoint-' || substr(md5('s' || (hash(i) % {shared})), 1, 16)"
    s2 = f"'checkpoint-' || substr(md5('s' || ((hash(i) + 1) % {shared})), 1, 16)"
    con = duckdb.connect(str(path))
    con.execute("BEGIN")
    con.execute(
        "INSERT INTO runs (run_id, stage, flow_run_id, params, code_version, status, started_at, ended_at) "
        f"SELECT md5('r' || i), 'stage' || (i % {stages}), NULL, '{{}}', 'bench', 'completed', now(), now() FROM range({runs}) t(i)"
    )
    con.execute(
        f"INSERT INTO artifacts SELECT {a}, 'dataset', 'step' || (i % {stages}), i // {stages} + 1, 'file:///bench', '{{}}', md5('r' || i), now() FROM range({runs}) t(i)"
    )
    con.execute(
        f"INSERT INTO artifacts SELECT 'checkpoint-' || substr(md5('s' || i), 1, 16), 'checkpoint', 'shared', i + 1, 'file:///bench', '{{}}', NULL, now() FROM range({shared}) t(i)"
    )
    con.execute(f"INSERT INTO edges SELECT md5('r' || i), {a}, 'output', 'out' FROM range({runs}) t(i)")
    con.execute(
        f"INSERT INTO edges SELECT md5('r' || i), {prev}, 'input', 'previous' FROM range({runs}) t(i) WHERE i % {stages} > 0"
    )
    con.execute(
        f"INSERT INTO edges SELECT md5('r' || i), {s2}, 'input', 'source' FROM range({runs}) t(i) WHERE i % {stages} = 0"
    )
    con.execute(f"INSERT INTO edges SELECT md5('r' || i), {s}, 'input', 'model' FROM range({runs}) t(i)")
    con.execute(f"INSERT INTO metrics SELECT md5('r' || i), {a}, 'rows', i, NULL FROM range({runs}) t(i)")
    con.execute("COMMIT")
    con.execute("CHECKPOINT")
    con.close()
    return runs


def median_ms(fn, repeats: int) -> tuple[float, int]:
    times, size = [], 0
    for _ in range(repeats):
        started = time.perf_counter()
        size = len(fn())
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000, size


def main(edges: int = 1_000_000, stages: int = 14, shared: int = 200, repeats: int = 7, as_json: bool = False) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "lineage.duckdb"
        started = time.perf_counter()
        runs = build_store(path, edges, stages, shared)
        build_s = time.perf_counter() - started
        store = LineageStore(path)
        counts = store.counts()
        middle_chain = (runs // stages) // 2
        queries = {
            "upstream of a chain's last artifact": ("up", artifact_id(middle_chain * stages + stages - 1)),
            "downstream of a chain's first artifact": ("down", artifact_id(middle_chain * stages)),
            "downstream of a shared artifact (wide)": ("down", shared_id(7 % shared)),
        }
        through_store = {}  # first, while no other connection is open: DuckDB shares one open file within a process
        for label, (towards, start) in queries.items():
            query = store.upstream if towards == "up" else store.downstream
            through_store[label] = median_ms(lambda query=query, start=start: query(start), repeats)
        rows = []
        warm = duckdb.connect(str(path), read_only=True)
        for label, (towards, start) in queries.items():
            cold_ms, links = through_store[label]
            warm_ms, _ = median_ms(lambda start=start, towards=towards: walk_lineage(warm, start, 64, towards), repeats)
            cte_ms, _ = median_ms(
                lambda start=start, towards=towards: recursive_walk(warm, [start], 0, 64, towards), max(1, repeats // 3)
            )
            rows.append(
                {
                    "query": label,
                    "links": links,
                    "store_ms": cold_ms,
                    "open_connection_ms": warm_ms,
                    "recursive_cte_ms": cte_ms,
                    "speedup_vs_cte": cte_ms / warm_ms,
                }
            )
        warm.close()
        write_times = []
        for index in range(20):
            moment = now()
            begun = time.perf_counter()
            store.record_run(
                stage="bench-write",
                flow_run_id=None,
                params={"i": index},
                code_version="bench",
                inputs={"model": shared_id(index)},
                outputs={
                    "out": {"artifact_id": f"dataset-write{index:010d}", "kind": "dataset", "name": "write", "uri": "x"}
                },
                metrics=[(None, "i", float(index), None)],
                status="completed",
                started_at=moment,
                ended_at=moment,
            )
            write_times.append(time.perf_counter() - begun)
        result = {
            "edges": counts["edges"],
            "runs": counts["runs"],
            "artifacts": counts["artifacts"],
            "stages_per_chain": stages,
            "store_mb": path.stat().st_size / 2**20,
            "build_s": build_s,
            "queries": rows,
            "record_run_ms": statistics.median(write_times) * 1000,
            "target_ms": 50.0,
        }
    if as_json:
        print(json.dumps(result))
        return result
    console = Console(width=160)
    console.print(
        f"lineage store: {result['edges']:,} edges, {result['runs']:,} runs, {result['artifacts']:,} artifacts, "
        f"{result['store_mb']:.0f} MB on disk (built in {build_s:.1f} s); chains of {stages} stages"
    )
    table = Table(title="lineage queries (median ms; target ≤ 50 ms through the store)")
    for column in (
        "query",
        "links",
        "through the store (open+query+close)",
        "open connection",
        "recursive CTE (before)",
        "speed-up",
    ):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["query"],
            f"{row['links']:,}",
            f"{row['store_ms']:.1f}",
            f"{row['open_connection_ms']:.1f}",
            f"{row['recursive_cte_ms']:.1f}",
            f"{row['speedup_vs_cte']:.1f}×",
        )
    console.print(table)
    console.print(f"record_run on this store: {result['record_run_ms']:.1f} ms (median of 20)")
    return result


if __name__ == "__main__":
    main()
