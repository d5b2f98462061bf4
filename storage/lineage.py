"""Lineage in DuckDB: runs, artifacts, edges and metrics, and the questions users ask of them.

Every write goes through :class:`LineageStore`, one short transaction per call, on a connection
opened for that call and closed after it: DuckDB admits one writing process per file, so holding
a connection would lock out the CLI while a flow runs. A lock held by another process is retried
with backoff for a bounded time, then reported.
"""

from __future__ import annotations

import json
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import duckdb

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS runs (
        run_id VARCHAR PRIMARY KEY, stage VARCHAR NOT NULL, flow_run_id VARCHAR, params JSON,
        code_version VARCHAR, status VARCHAR NOT NULL, started_at TIMESTAMPTZ, ended_at TIMESTAMPTZ)""",
    """CREATE TABLE IF NOT EXISTS artifacts (
        artifact_id VARCHAR PRIMARY KEY, kind VARCHAR NOT NULL, name VARCHAR, version INTEGER,
        uri VARCHAR, metadata JSON, created_by_run VARCHAR, created_at TIMESTAMPTZ)""",
    """CREATE TABLE IF NOT EXISTS edges (
        run_id VARCHAR NOT NULL, artifact_id VARCHAR NOT NULL, direction VARCHAR NOT NULL,
        role VARCHAR, PRIMARY KEY (run_id, artifact_id, direction))""",
    """CREATE TABLE IF NOT EXISTS metrics (
        run_id VARCHAR NOT NULL, artifact_id VARCHAR, key VARCHAR NOT NULL, value DOUBLE, step INTEGER)""",
    "CREATE INDEX IF NOT EXISTS edges_by_artifact ON edges (artifact_id, direction)",
]

LOCK_MARKERS = ("Could not set lock", "Conflicting lock", "database is locked")


class LineageBusy(RuntimeError):
    pass


def now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class LineageLink:
    """One step of a lineage walk: ``artifact_id`` was produced by ``stage`` from ``parent_id``."""

    depth: int
    artifact_id: str
    run_id: str
    stage: str
    parent_id: str
    role: str


class LineageStore:
    def __init__(self, db_path: Path | str, lock_timeout_s: float = 60.0):
        self.db_path = str(db_path)
        self.lock_timeout_s = lock_timeout_s
        Path(self.db_path).parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            for statement in SCHEMA:
                con.execute(statement)

    @contextmanager
    def _connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        deadline, delay = time.monotonic() + self.lock_timeout_s, 0.05
        while True:
            try:
                con = duckdb.connect(self.db_path, read_only=read_only and Path(self.db_path).exists())
                break
            except duckdb.IOException as exc:
                if not any(m in str(exc) for m in LOCK_MARKERS):
                    raise
                if time.monotonic() > deadline:
                    raise LineageBusy(f"{self.db_path} is locked by another process: {exc}") from exc
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
        try:
            yield con
        finally:
            con.close()

    # -- writes -------------------------------------------------------------------------------

    def record_run(
        self,
        *,
        stage: str,
        flow_run_id: str | None,
        params: dict[str, Any],
        code_version: str,
        inputs: dict[str, str],
        outputs: dict[str, dict[str, Any]],
        metrics: list[tuple[str | None, str, float, int | None]],
        status: str,
        started_at: datetime,
        ended_at: datetime,
    ) -> str:
        """One stage run with its input/output edges, new artifacts and metrics, atomically.

        ``outputs`` maps role -> {artifact_id, kind, name, uri, metadata}; ``metrics`` holds
        (artifact_id, key, value, step) rows.
        """
        run_id = uuid.uuid4().hex
        with self._connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(
                    "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [run_id, stage, flow_run_id, json.dumps(params, default=str), code_version, status, started_at, ended_at],
                )
                for role, artifact_id in inputs.items():
                    con.execute("INSERT OR IGNORE INTO edges VALUES (?, ?, 'input', ?)", [run_id, artifact_id, role])
                for role, art in outputs.items():
                    version = con.execute(
                        "SELECT count(*) FROM artifacts WHERE name = ? AND kind = ?", [art["name"], art["kind"]]
                    ).fetchone()[0] + 1
                    con.execute(
                        "INSERT OR IGNORE INTO artifacts VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [art["artifact_id"], art["kind"], art["name"], version, art["uri"],
                         json.dumps(art.get("metadata", {}), default=str), run_id, ended_at],
                    )
                    con.execute("INSERT OR IGNORE INTO edges VALUES (?, ?, 'output', ?)", [run_id, art["artifact_id"], role])
                for artifact_id, key, value, step in metrics:
                    con.execute("INSERT INTO metrics VALUES (?, ?, ?, ?, ?)", [run_id, artifact_id, key, float(value), step])
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return run_id

    # -- queries ------------------------------------------------------------------------------

    def artifact(self, artifact_id: str) -> dict[str, Any] | None:
        with self._connect(read_only=True) as con:
            row = con.execute(
                """SELECT a.artifact_id, a.kind, a.name, a.version, a.uri, a.metadata, a.created_by_run,
                          a.created_at, r.stage FROM artifacts a LEFT JOIN runs r ON r.run_id = a.created_by_run
                   WHERE a.artifact_id = ?""",
                [artifact_id],
            ).fetchone()
        if row is None:
            return None
        keys = ["artifact_id", "kind", "name", "version", "uri", "metadata", "created_by_run", "created_at", "stage"]
        record = dict(zip(keys, row))
        record["metadata"] = json.loads(record["metadata"] or "{}")
        record["created_at"] = str(record["created_at"])
        return record

    def metrics_of(self, artifact_id: str) -> dict[str, float]:
        """Scalar metrics (step is NULL) recorded with the artifact by the run that made it."""
        with self._connect(read_only=True) as con:
            rows = con.execute(
                "SELECT key, value FROM metrics WHERE artifact_id = ? AND step IS NULL ORDER BY key", [artifact_id]
            ).fetchall()
        return {key: value for key, value in rows}

    def metric_series(self, artifact_id: str, key: str) -> list[tuple[int, float]]:
        with self._connect(read_only=True) as con:
            return con.execute(
                "SELECT step, value FROM metrics WHERE artifact_id = ? AND key = ? AND step IS NOT NULL ORDER BY step",
                [artifact_id, key],
            ).fetchall()

    def upstream(self, artifact_id: str, max_depth: int = 64) -> list[LineageLink]:
        """What produced ``artifact_id``, recursively: one link per (artifact, input) pair."""
        return self._walk(artifact_id, max_depth, towards="up")

    def downstream(self, artifact_id: str, max_depth: int = 64) -> list[LineageLink]:
        """What was made from ``artifact_id``, recursively."""
        return self._walk(artifact_id, max_depth, towards="down")

    def _walk(self, artifact_id: str, max_depth: int, towards: str) -> list[LineageLink]:
        near, far = ("output", "input") if towards == "up" else ("input", "output")
        query = f"""
            WITH RECURSIVE walk(artifact_id, depth) AS (
                SELECT ?::VARCHAR, 0
                UNION
                SELECT e_far.artifact_id, walk.depth + 1
                FROM walk
                JOIN edges e_near ON e_near.artifact_id = walk.artifact_id AND e_near.direction = '{near}'
                JOIN edges e_far ON e_far.run_id = e_near.run_id AND e_far.direction = '{far}'
                WHERE walk.depth < ?
            )
            SELECT DISTINCT min(w.depth) OVER (PARTITION BY w.artifact_id), w.artifact_id, r.run_id, r.stage,
                   e_far.artifact_id, e_far.role
            FROM walk w
            JOIN edges e_near ON e_near.artifact_id = w.artifact_id AND e_near.direction = '{near}'
            JOIN runs r ON r.run_id = e_near.run_id
            JOIN edges e_far ON e_far.run_id = r.run_id AND e_far.direction = '{far}'
        """
        with self._connect(read_only=True) as con:
            rows = con.execute(query, [artifact_id, max_depth]).fetchall()
        if towards == "up":
            links = {LineageLink(*row) for row in rows}
        else:  # keep the link's meaning: artifact_id was produced from parent_id
            links = {LineageLink(depth, made, run, stage, source, role) for depth, source, run, stage, made, role in rows}
        return sorted(links, key=lambda link: (link.depth, link.artifact_id, link.parent_id, link.run_id))

    def runs_of_stage(self, stage: str) -> list[dict[str, Any]]:
        """Every run of a stage, oldest first, with its parameters."""
        with self._connect(read_only=True) as con:
            rows = con.execute(
                "SELECT run_id, status, started_at, ended_at, params FROM runs WHERE stage = ? ORDER BY started_at", [stage]
            ).fetchall()
        names = ["run_id", "status", "started_at", "ended_at", "params"]
        return [{**dict(zip(names, row)), "params": json.loads(row[4]) if isinstance(row[4], str) else row[4]} for row in rows]

    def counts(self) -> dict[str, int]:
        with self._connect(read_only=True) as con:
            return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("runs", "artifacts", "edges", "metrics")}
