"""Lineage in DuckDB: runs, artifacts, edges and metrics, and the questions users ask of them.

Every write goes through :class:`LineageStore`. DuckDB lets one process at a time open a file for
writing, and Prefect workers, Dask workers and the CLI all write. So a write happens in two steps:

1. **Journal.** The whole run record is written to ``lineage.duckdb.journal/`` as one JSON file
   (written beside, fsynced, renamed into place). Once the file is there the record cannot be lost.
2. **Ingest.** The writer takes the database (bounded retry with jittered backoff while another
   process holds it) and, in one short transaction, inserts *every* journalled record that is not
   in yet, then deletes their files. Writers that lose the race find their file gone: another
   process committed it for them (group commit), so they return without opening the file at all.

A process killed at any point leaves either a journal file (ingested by the next access) or a
committed transaction; a file whose run is already in the database (killed after the commit,
before the delete) is skipped. Reads ingest pending records first, then open the file read-only.

Artifact ids are content hashes made by :mod:`storage.artifacts`; run ids are random (a run is an
event, two identical runs are two runs).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import random
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from storage.lineage_rows import insert_entries
from storage.lineage_walk import LineageLink, walk_lineage

SCHEMA_VERSION = 4
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
    "CREATE TABLE IF NOT EXISTS lineage_meta (key VARCHAR PRIMARY KEY, value VARCHAR)",
    "ALTER TABLE runs ADD COLUMN IF NOT EXISTS tracker JSON",  # version 3: the experiment tracker's run (tasks/tracking.py)
    "ALTER TABLE runs ADD COLUMN IF NOT EXISTS label VARCHAR",  # version 4: the flow's label for this use of the stage
    "CREATE INDEX IF NOT EXISTS edges_by_artifact ON edges (artifact_id)",
    "CREATE INDEX IF NOT EXISTS edges_by_run ON edges (run_id)",
    "CREATE INDEX IF NOT EXISTS runs_by_stage ON runs (stage)",
    "CREATE INDEX IF NOT EXISTS runs_by_flow_run ON runs (flow_run_id)",
    "CREATE INDEX IF NOT EXISTS artifacts_by_name ON artifacts (name)",
    "CREATE INDEX IF NOT EXISTS metrics_by_artifact ON metrics (artifact_id)",
    "CREATE INDEX IF NOT EXISTS metrics_by_run ON metrics (run_id)",
]

LOCK_MARKERS = ("Could not set lock", "Conflicting lock", "database is locked", "with a different configuration")
LINGER_POLL_S, LINGER_IDLE_S, LINGER_MAX_S = 0.002, 0.01, 0.2  # see LineageStore._linger
STALE_TEMP_S = 3600.0  # a half-written journal file this old belongs to a process that died
WRITER_LOCK = "writer.lock"
log = logging.getLogger("thinkflow.lineage")


class LineageBusy(RuntimeError):
    pass


class LineageNotFound(LookupError):
    pass


def new_run_id() -> str:
    return uuid.uuid4().hex


def now() -> datetime:
    return datetime.now(UTC)


def is_lock_conflict(exc: Exception) -> bool:
    """Another process holds the file, or another thread of this one holds it in the other mode
    (DuckDB shares one open file per process and refuses a read-only and a read-write connection
    to it at once): both pass when the holder closes."""
    return isinstance(exc, (duckdb.IOException, duckdb.ConnectionException)) and any(
        m in str(exc) for m in LOCK_MARKERS
    )


class LineageStore:
    def __init__(self, db_path: Path | str, lock_timeout_s: float = 60.0):
        self.db_path = Path(db_path)
        self.journal = self.db_path.with_name(self.db_path.name + ".journal")
        self.lock_timeout_s = lock_timeout_s
        self.journal.mkdir(parents=True, exist_ok=True)
        with self._writer_turn(), self._writer() as con:  # the turn: a second process must not open a half-created file
            current = con.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = 'lineage_meta'"
            ).fetchone()[0]
            version = (
                con.execute("SELECT value FROM lineage_meta WHERE key = 'schema_version'").fetchone()
                if current
                else None
            )
            if version is None or int(version[0]) < SCHEMA_VERSION:
                if version is None:  # version 1 indexed edges on (artifact_id, direction), which lookups cannot use
                    con.execute("DROP INDEX IF EXISTS edges_by_artifact")
                for statement in SCHEMA:  # idempotent: a version-1 file gains the meta table and indices
                    con.execute(statement)
                con.execute("INSERT OR REPLACE INTO lineage_meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
            self._ingest(con)

    # -- connections ---------------------------------------------------------------------------

    def _open(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        """Open the file, retrying with jittered backoff while another process holds it."""
        deadline, delay = time.monotonic() + self.lock_timeout_s, 0.002
        while True:
            try:
                return duckdb.connect(str(self.db_path), read_only=read_only)
            except (duckdb.IOException, duckdb.ConnectionException) as exc:
                if not is_lock_conflict(exc):
                    raise
                if time.monotonic() > deadline:
                    holder = str(exc).split("\n")[0][:200]
                    raise LineageBusy(
                        f"{self.db_path} stayed locked by another process for {self.lock_timeout_s:.0f} s ({holder}); "
                        "try again once that process (a flow run, a Python session) has closed it"
                    ) from exc
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.25)

    @contextmanager
    def _writer(self) -> Iterator[duckdb.DuckDBPyConnection]:
        con = self._open(read_only=False)
        try:
            yield con
        finally:
            con.close()

    @contextmanager
    def _reader(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if self.pending():
            try:
                self.flush()
            except LineageBusy as exc:  # answer from what is committed; the records stay journalled
                log.warning("lineage: %s; answering without %d journalled record(s)", exc, len(self.pending()))
        con = self._open(read_only=True)
        try:
            yield con
        finally:
            con.close()

    # -- writes --------------------------------------------------------------------------------

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
        run_id: str | None = None,
        tracker: dict[str, Any] | None = None,
        label: str | None = None,
    ) -> str:
        """One stage run with its input/output edges, new artifacts and metrics; atomic, and in the
        database when this returns.

        ``outputs`` maps role -> {artifact_id, kind, name, uri, metadata}; ``metrics`` holds
        (artifact_id, key, value, step) rows; ``run_id`` a fresh id the caller minted (else one is
        made); ``tracker`` where the experiment tracker holds the same run (kind, uri, run id);
        ``label`` the flow's name for this use of the stage ("rl", "sft stage 1"), when it has one.
        """
        run_id = run_id or new_run_id()
        entry = {
            "run": {
                "run_id": run_id,
                "stage": stage,
                "label": label,
                "flow_run_id": flow_run_id,
                "params": params,
                "code_version": code_version,
                "status": status,
                "started_at": started_at.isoformat(),
                "ended_at": ended_at.isoformat(),
                "tracker": tracker,
            },
            "inputs": inputs,
            "outputs": outputs,
            "metrics": [[artifact_id, key, float(value), step] for artifact_id, key, value, step in metrics],
        }
        journalled = self._journal_write(run_id, entry)
        self.flush(until_gone=journalled)
        return run_id

    def _journal_write(self, run_id: str, entry: dict[str, Any]) -> Path:
        final = self.journal / f"{time.time_ns():020d}-{run_id}.json"
        temp = final.with_suffix(".tmp")
        with open(temp, "w") as handle:
            handle.write(json.dumps(entry, default=str))
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(temp, final)
        return final

    def pending(self) -> list[Path]:
        return sorted(self.journal.glob("*.json"))

    @contextmanager
    def _writer_turn(self, until_gone: Path | None = None) -> Iterator[bool]:
        """Take the writers' advisory lock beside the journal (a kernel lock: a killed holder
        releases it). Yields False, without the lock, once ``until_gone`` has disappeared (another
        writer ingested it); raises :class:`LineageBusy` after the lock timeout. A waiting writer
        spends a cheap ``flock`` per millisecond, not a failed DuckDB open."""
        deadline = time.monotonic() + self.lock_timeout_s
        with open(self.journal / WRITER_LOCK, "a") as lock:
            while True:
                if until_gone is not None and not until_gone.exists():
                    yield False
                    return
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise LineageBusy(
                            f"another process kept writing {self.db_path} for {self.lock_timeout_s:.0f} s; any record being "
                            f"written is kept in {self.journal} and is written by the next lineage access"
                        ) from None
                    time.sleep(0.001 * (1 + random.random()))
            try:
                yield True
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def flush(self, until_gone: Path | None = None) -> None:
        """Ingest every journalled record. With ``until_gone``, return as soon as that file has
        been ingested, by this process or another."""
        with self._writer_turn(until_gone) as mine:
            if mine and (until_gone is None or until_gone.exists()):
                with self._writer() as con:
                    self._ingest(con)
                    self._linger(con)

    def _linger(self, con: duckdb.DuckDBPyConnection) -> None:
        """Having paid for opening the file, keep it a few milliseconds and ingest what other
        processes journal meanwhile (they see their files go and skip opening it themselves).
        Ends after ``LINGER_IDLE_S`` without new records, or ``LINGER_MAX_S`` in all."""
        started = idle_since = time.monotonic()
        while time.monotonic() - started < LINGER_MAX_S and time.monotonic() - idle_since < LINGER_IDLE_S:
            time.sleep(LINGER_POLL_S)
            if self._ingest(con):
                idle_since = time.monotonic()

    def _ingest(self, con: duckdb.DuckDBPyConnection) -> int:
        """Insert every journalled record not in the database yet, in one transaction, then delete
        the files. Returns how many records were inserted."""
        self._remove_stale_temps()
        files = self.pending()
        if not files:
            return 0
        entries = []
        for path in files:
            try:
                entries.append((path, json.loads(path.read_text())))
            except FileNotFoundError:  # ingested by a process that held the file before us
                continue
            except (OSError, ValueError) as exc:
                rejected = path.with_suffix(".rejected")
                os.replace(path, rejected)
                log.error("lineage: journal file %s is unreadable (%s); moved to %s, not ingested", path, exc, rejected)
        run_ids = [entry["run"]["run_id"] for _, entry in entries]
        present = {
            row[0]
            for row in con.execute("SELECT run_id FROM runs WHERE run_id IN (SELECT unnest(?))", [run_ids]).fetchall()
        }
        fresh = [entry for _, entry in entries if entry["run"]["run_id"] not in present]
        con.execute("BEGIN TRANSACTION")
        try:
            insert_entries(con, fresh)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        for path, _ in entries:
            path.unlink(missing_ok=True)
        return len(fresh)

    def _remove_stale_temps(self) -> None:
        cutoff = time.time() - STALE_TEMP_S
        for temp in self.journal.glob("*.tmp"):
            try:
                if temp.stat().st_mtime < cutoff:
                    temp.unlink()
            except FileNotFoundError:
                pass

    # -- queries -------------------------------------------------------------------------------

    def artifact(self, artifact_id: str) -> dict[str, Any] | None:
        with self._reader() as con:
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

    def artifacts(self, artifact_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Kind, name, version and producing stage of many artifacts at once (for trees and graphs)."""
        with self._reader() as con:
            rows = con.execute(
                "SELECT artifact_id, kind, name, version, uri, created_by_run FROM artifacts WHERE artifact_id IN (SELECT unnest(?))",
                [list(artifact_ids)],
            ).fetchall()
            made_by = sorted({row[5] for row in rows if row[5]})
            stages = dict(
                con.execute("SELECT run_id, stage FROM runs WHERE run_id IN (SELECT unnest(?))", [made_by]).fetchall()
            )
        return {
            row[0]: {"kind": row[1], "name": row[2], "version": row[3], "uri": row[4], "stage": stages.get(row[5])}
            for row in rows
        }

    def latest_artifact(self, name: str, kind: str | None = None) -> dict[str, Any] | None:
        """The highest version of the artifacts called ``name`` (of ``kind``), or None."""
        with self._reader() as con:
            rows = con.execute("SELECT artifact_id, kind, version FROM artifacts WHERE name = ?", [name]).fetchall()
        rows = [row for row in rows if kind is None or row[1] == kind]
        return self.artifact(max(rows, key=lambda row: row[2])[0]) if rows else None

    # Content addressing can give two runs the same output (two RL runs that made no update write the same weights):
    # an artifact's metrics are those of the run that made it first, never a mix of both runs' series.
    _MADE_BY = (
        "(run_id = (SELECT created_by_run FROM artifacts WHERE artifact_id = ?) OR "
        "(SELECT created_by_run FROM artifacts WHERE artifact_id = ?) IS NULL)"
    )

    def metrics_of(self, artifact_id: str) -> dict[str, float]:
        """Scalar metrics (step is NULL) recorded with the artifact by the run that made it."""
        with self._reader() as con:
            rows = con.execute(
                f"SELECT key, value FROM metrics WHERE artifact_id = ? AND step IS NULL AND {self._MADE_BY} ORDER BY key",
                [artifact_id, artifact_id, artifact_id],
            ).fetchall()
        return {key: value for key, value in rows}

    def metric_series(self, artifact_id: str, key: str) -> list[tuple[int, float]]:
        """A per-step metric recorded with the artifact by the run that made it, by step."""
        with self._reader() as con:
            return con.execute(
                f"SELECT step, value FROM metrics WHERE artifact_id = ? AND key = ? AND step IS NOT NULL AND {self._MADE_BY} "
                "ORDER BY step",
                [artifact_id, key, artifact_id, artifact_id],
            ).fetchall()

    def upstream(self, artifact_id: str, max_depth: int = 64) -> list[LineageLink]:
        """What produced ``artifact_id``, recursively: one link per (artifact, input) pair."""
        with self._reader() as con:
            return walk_lineage(con, artifact_id, max_depth, towards="up")

    def downstream(self, artifact_id: str, max_depth: int = 64) -> list[LineageLink]:
        """What was made from ``artifact_id``, recursively."""
        with self._reader() as con:
            return walk_lineage(con, artifact_id, max_depth, towards="down")

    def runs_of_stage(self, stage: str) -> list[dict[str, Any]]:
        """Every run of a stage, oldest first, with its parameters."""
        with self._reader() as con:
            rows = con.execute(
                "SELECT run_id, status, started_at, ended_at, params FROM runs WHERE stage = ? ORDER BY started_at",
                [stage],
            ).fetchall()
        names = ["run_id", "status", "started_at", "ended_at", "params"]
        return [
            {**dict(zip(names, row)), "params": json.loads(row[4]) if isinstance(row[4], str) else row[4]}
            for row in rows
        ]

    def recent_runs(
        self, limit: int = 20, stage: str | None = None, flow_run_id: str | None = None
    ) -> list[dict[str, Any]]:
        """The newest runs first: id, stage, status, times, flow run, output ids."""
        clauses, args = [], []
        for column, value in (("stage", stage), ("flow_run_id", flow_run_id)):
            if value is not None:
                clauses.append(f"r.{column} = ?")
                args.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._reader() as con:
            rows = con.execute(
                f"""SELECT r.run_id, r.stage, r.label, r.status, r.started_at, r.ended_at, r.flow_run_id, r.tracker,
                           list(e.artifact_id ORDER BY e.artifact_id) FILTER (WHERE e.direction = 'output')
                    FROM runs r LEFT JOIN edges e ON e.run_id = r.run_id {where}
                    GROUP BY ALL ORDER BY r.started_at DESC LIMIT ?""",
                args + [limit],
            ).fetchall()
        names = ["run_id", "stage", "label", "status", "started_at", "ended_at", "flow_run_id", "tracker", "outputs"]
        return [
            {**dict(zip(names, row)), "tracker": json.loads(row[7]) if row[7] else None, "outputs": row[8] or []}
            for row in rows
        ]

    def resolve_run(self, ref: str) -> str:
        """A run id, a unique prefix of one, or an artifact id (the run that produced it)."""
        with self._reader() as con:
            made = con.execute("SELECT created_by_run FROM artifacts WHERE artifact_id = ?", [ref]).fetchone()
            if made:
                return made[0]
            matches = [
                r[0]
                for r in con.execute("SELECT run_id FROM runs WHERE starts_with(run_id, ?) LIMIT 3", [ref]).fetchall()
            ]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise LineageNotFound(f"{ref!r} is neither a run id nor an artifact id in the lineage at {self.db_path}")
        raise LineageNotFound(
            f"{ref!r} is the start of several run ids ({', '.join(matches)}, …); give more characters"
        )

    def run(self, run_id: str) -> dict[str, Any]:
        """One run: stage, status, times, params, input and output artifacts, metrics."""
        with self._reader() as con:
            return run_record(con, run_id, self.db_path)

    def runs(self, run_ids: list[str]) -> list[dict[str, Any]]:
        with self._reader() as con:
            return [run_record(con, run_id, self.db_path) for run_id in run_ids]

    def run_ids(self, since: datetime | None = None) -> list[str]:
        with self._reader() as con:
            rows = con.execute(
                "SELECT run_id FROM runs WHERE ? IS NULL OR ended_at >= ? ORDER BY started_at, run_id", [since, since]
            ).fetchall()
        return [r[0] for r in rows]

    def counts(self) -> dict[str, int]:
        with self._reader() as con:
            return {
                t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in ("runs", "artifacts", "edges", "metrics")
            }


def run_record(con: duckdb.DuckDBPyConnection, run_id: str, where: Path) -> dict[str, Any]:
    row = con.execute(
        "SELECT run_id, stage, label, flow_run_id, params, code_version, status, started_at, ended_at, tracker"
        " FROM runs WHERE run_id = ?",
        [run_id],
    ).fetchone()
    if row is None:
        raise LineageNotFound(f"run {run_id} is not in the lineage at {where}")
    edges = con.execute(
        "SELECT direction, role, artifact_id FROM edges WHERE run_id = ? ORDER BY role", [run_id]
    ).fetchall()
    metric_rows = con.execute(
        "SELECT key, value, step FROM metrics WHERE run_id = ? ORDER BY key, step", [run_id]
    ).fetchall()
    names = [
        "run_id",
        "stage",
        "label",
        "flow_run_id",
        "params",
        "code_version",
        "status",
        "started_at",
        "ended_at",
        "tracker",
    ]
    record = dict(zip(names, row))
    record["params"] = json.loads(record["params"] or "{}")
    record["tracker"] = json.loads(record["tracker"]) if record["tracker"] else None
    for direction in ("input", "output"):
        record[f"{direction}s"] = [{"role": role, "artifact_id": a} for d, role, a in edges if d == direction]
    record["metrics"] = {key: value for key, value, step in metric_rows if step is None}
    record["series"] = sorted({key for key, _, step in metric_rows if step is not None})
    return record
