"""Walking lineage: what an artifact was made from, and what was made from it, breadth first through
the indices (one small query per step), switching to one recursive query when a step fans out past
``INDEXED_FRONTIER_MAX`` runs (``thinkflow bench lineage`` measures both on a 1 M-edge store)."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

INDEXED_FRONTIER_MAX = 64  # index probes up to this many runs a step, one recursive query past it


@dataclass(frozen=True)
class LineageLink:
    """One step of a lineage walk: ``artifact_id`` was produced by ``stage`` from ``parent_id``."""

    depth: int
    artifact_id: str
    run_id: str
    stage: str
    parent_id: str
    role: str


def producing_runs(con: duckdb.DuckDBPyConnection, artifact_ids: list[str]) -> list[tuple[str, str]]:
    """(run, artifact) for the run that made each artifact. An artifact id hashes its parents, so
    every run that produced it read the same inputs: the first producer stands for all."""
    rows = con.execute(
        "SELECT created_by_run, artifact_id FROM artifacts WHERE artifact_id IN (SELECT unnest(?))", [artifact_ids]
    )
    return [(run, artifact) for run, artifact in rows.fetchall() if run is not None]


def consuming_runs(con: duckdb.DuckDBPyConnection, artifact_ids: list[str]) -> list[tuple[str, str]]:
    """(run, artifact) for every run that read one of the artifacts. No direction predicate in SQL:
    DuckDB answers a bare IN-list from the index but scans the table once a second predicate is
    added, so the direction is checked here."""
    rows = con.execute(
        "SELECT run_id, artifact_id, direction FROM edges WHERE artifact_id IN (SELECT unnest(?))", [artifact_ids]
    )
    return [(run, artifact) for run, artifact, direction in rows.fetchall() if direction == "input"]


def walk_lineage(con: duckdb.DuckDBPyConnection, artifact_id: str, max_depth: int, towards: str) -> list[LineageLink]:
    """Breadth-first, one level per query: each level looks the frontier up through the edge
    indices (artifact → run, then run → its other side), so the cost follows the size of the
    answer, not of the store."""
    near, far = ("output", "input") if towards == "up" else ("input", "output")
    found: set[tuple[int, str, str, str, str]] = set()
    seen, frontier, depth = {artifact_id}, [artifact_id], 0
    while frontier and depth < max_depth:
        run_rows = producing_runs(con, frontier) if towards == "up" else consuming_runs(con, frontier)
        if not run_rows:
            break
        run_ids = sorted({run for run, _ in run_rows})
        if len(run_ids) > INDEXED_FRONTIER_MAX:  # a wide answer: hash joins over the table beat many index probes
            found |= recursive_walk(con, frontier, depth, max_depth, towards)
            break
        far_rows = [
            (run, art, role)
            for run, art, direction, role in con.execute(
                "SELECT run_id, artifact_id, direction, role FROM edges WHERE run_id IN (SELECT unnest(?))", [run_ids]
            ).fetchall()
            if direction == far
        ]
        nears: dict[str, list[str]] = {}
        for run, near_id in run_rows:
            nears.setdefault(run, []).append(near_id)
        next_frontier = []
        for run, far_id, role in far_rows:
            for near_id in nears[run]:
                if towards == "up":  # near_id was produced from far_id
                    found.add((depth, near_id, run, far_id, role))
                else:  # far_id was produced from near_id (role: far_id's output role)
                    found.add((depth, far_id, run, near_id, role))
            if far_id not in seen:
                seen.add(far_id)
                next_frontier.append(far_id)
        frontier, depth = next_frontier, depth + 1
    nearest: dict[tuple[str, str, str, str], int] = {}
    for depth, made, run, parent, role in found:
        nearest[(made, run, parent, role)] = min(depth, nearest.get((made, run, parent, role), depth))
    runs = sorted({run for _, run, _, _ in nearest})
    stages = dict(con.execute("SELECT run_id, stage FROM runs WHERE run_id IN (SELECT unnest(?))", [runs]).fetchall())
    links = [
        LineageLink(depth, made, run, stages[run], parent, role) for (made, run, parent, role), depth in nearest.items()
    ]
    return sorted(links, key=lambda link: (link.depth, link.artifact_id, link.parent_id, link.run_id))


def recursive_walk(
    con: duckdb.DuckDBPyConnection, frontier: list[str], depth: int, max_depth: int, towards: str
) -> set[tuple]:
    """The rest of a walk from a wide frontier in one recursive query: (depth, made, run, parent, role)."""
    near, far = ("output", "input") if towards == "up" else ("input", "output")
    rows = con.execute(
        f"""
        WITH RECURSIVE walk(artifact_id, depth) AS (
            SELECT unnest(?::VARCHAR[]), ?::INTEGER
            UNION
            SELECT e_far.artifact_id, walk.depth + 1 FROM walk
            JOIN edges e_near ON e_near.artifact_id = walk.artifact_id AND e_near.direction = '{near}'
            JOIN edges e_far ON e_far.run_id = e_near.run_id AND e_far.direction = '{far}'
            WHERE walk.depth + 1 < ?)
        SELECT min(w.depth), w.artifact_id, e_near.run_id, e_far.artifact_id, e_far.role FROM walk w
        JOIN edges e_near ON e_near.artifact_id = w.artifact_id AND e_near.direction = '{near}'
        JOIN edges e_far ON e_far.run_id = e_near.run_id AND e_far.direction = '{far}'
        GROUP BY ALL""",
        [frontier, depth, max_depth],
    ).fetchall()
    if towards == "up":
        return {(d, near_id, run, far_id, role) for d, near_id, run, far_id, role in rows}
    return {(d, far_id, run, near_id, role) for d, near_id, run, far_id, role in rows}
