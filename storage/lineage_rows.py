"""Journalled run records as rows of the lineage tables: the column lists and the batched inserts
that :meth:`storage.lineage.LineageStore` runs inside its ingest transaction."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import duckdb

RUN_COLUMNS = [
    ("run_id", "VARCHAR"),
    ("stage", "VARCHAR"),
    ("flow_run_id", "VARCHAR"),
    ("params", "JSON"),
    ("code_version", "VARCHAR"),
    ("status", "VARCHAR"),
    ("started_at", "TIMESTAMPTZ"),
    ("ended_at", "TIMESTAMPTZ"),
    ("tracker", "JSON"),
    ("label", "VARCHAR"),
]
ARTIFACT_COLUMNS = [
    ("artifact_id", "VARCHAR"),
    ("kind", "VARCHAR"),
    ("name", "VARCHAR"),
    ("version", "INTEGER"),
    ("uri", "VARCHAR"),
    ("metadata", "JSON"),
    ("created_by_run", "VARCHAR"),
    ("created_at", "TIMESTAMPTZ"),
]
EDGE_COLUMNS = [("run_id", "VARCHAR"), ("artifact_id", "VARCHAR"), ("direction", "VARCHAR"), ("role", "VARCHAR")]
METRIC_COLUMNS = [
    ("run_id", "VARCHAR"),
    ("artifact_id", "VARCHAR"),
    ("key", "VARCHAR"),
    ("value", "DOUBLE"),
    ("step", "INTEGER"),
]


def insert_rows(
    con: duckdb.DuckDBPyConnection, table: str, columns: list[tuple[str, str]], rows: list[tuple], ignore: bool
) -> None:
    """Many rows in one statement: each column goes in as one list parameter and is unnested."""
    if not rows:
        return
    values = ", ".join(
        f"unnest(?::VARCHAR[])::{kind}" if kind in ("JSON", "TIMESTAMPTZ") else f"unnest(?::{kind}[])"
        for _, kind in columns
    )
    as_text = {i for i, (_, kind) in enumerate(columns) if kind in ("JSON", "TIMESTAMPTZ")}
    params = [
        [None if row[i] is None else str(row[i]) if i in as_text else row[i] for row in rows]
        for i in range(len(columns))
    ]
    con.execute(f"INSERT {'OR IGNORE ' if ignore else ''}INTO {table} SELECT {values}", params)


def insert_entries(con: duckdb.DuckDBPyConnection, entries: list[dict[str, Any]]) -> None:
    """Journalled run records as rows, four statements for the whole batch (inside the caller's
    transaction). An artifact already recorded keeps its first producer and version; a new one
    gets the next version of its (name, kind)."""
    outputs = [(entry["run"], art) for entry in entries for art in entry["outputs"].values()]
    names = sorted({art["name"] for _, art in outputs})
    versions = Counter()
    for name, kind in con.execute(
        "SELECT name, kind FROM artifacts WHERE name IN (SELECT unnest(?))", [names]
    ).fetchall():
        versions[(name, kind)] += 1  # one indexed column only: a second predicate would scan the table
    ids = sorted({art["artifact_id"] for _, art in outputs})
    known = {
        r[0]
        for r in con.execute(
            "SELECT artifact_id FROM artifacts WHERE artifact_id IN (SELECT unnest(?))", [ids]
        ).fetchall()
    }
    artifacts = []
    for run, art in outputs:
        if art["artifact_id"] in known:
            continue
        known.add(art["artifact_id"])
        versions[(art["name"], art["kind"])] += 1
        artifacts.append(
            (
                art["artifact_id"],
                art["kind"],
                art["name"],
                versions[(art["name"], art["kind"])],
                art["uri"],
                json.dumps(art.get("metadata", {}), default=str),
                run["run_id"],
                run["ended_at"],
            )
        )
    runs = [
        (
            r["run_id"],
            r["stage"],
            r["flow_run_id"],
            json.dumps(r["params"], default=str),
            r["code_version"],
            r["status"],
            r["started_at"],
            r["ended_at"],
            json.dumps(r["tracker"]) if r.get("tracker") else None,
            r.get("label"),
        )
        for r in (entry["run"] for entry in entries)
    ]
    edges = [
        (entry["run"]["run_id"], artifact_id, "input", role)
        for entry in entries
        for role, artifact_id in entry["inputs"].items()
    ]
    edges += [
        (run["run_id"], art["artifact_id"], "output", role)
        for entry in entries
        for run, (role, art) in ((entry["run"], item) for item in entry["outputs"].items())
    ]
    metrics = [(entry["run"]["run_id"], *row) for entry in entries for row in entry["metrics"]]
    insert_rows(con, "runs", RUN_COLUMNS, runs, ignore=False)
    insert_rows(con, "artifacts", ARTIFACT_COLUMNS, artifacts, ignore=False)
    insert_rows(con, "edges", EDGE_COLUMNS, edges, ignore=True)
    insert_rows(con, "metrics", METRIC_COLUMNS, metrics, ignore=False)
