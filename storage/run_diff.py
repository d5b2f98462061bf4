"""Two runs side by side: what differed in their parameters, inputs and code, and how their
metrics compare. Pure functions over the records :meth:`LineageStore.run` returns."""

from __future__ import annotations

from typing import Any

MISSING = "—"


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested params as dotted keys: {"sft": {"lr": 1e-4}} -> {"sft.lr": 1e-4}. Lists stay whole."""
    if isinstance(value, dict) and value:
        flat: dict[str, Any] = {}
        for key, inner in value.items():
            flat.update(flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value} if prefix else {}


def side_by_side(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "key": key,
            "a": a.get(key, MISSING),
            "b": b.get(key, MISSING),
            "same": a.get(key, MISSING) == b.get(key, MISSING),
        }
        for key in sorted(set(a) | set(b))
    ]


def metric_rows(a: dict[str, float], b: dict[str, float]) -> list[dict[str, Any]]:
    rows = side_by_side(a, b)
    for row in rows:
        both = isinstance(row["a"], (int, float)) and isinstance(row["b"], (int, float))
        row["delta"] = row["b"] - row["a"] if both else None
    return rows


def edge_map(record: dict[str, Any], direction: str) -> dict[str, str]:
    return {f"{edge['role']}": edge["artifact_id"] for edge in record[f"{direction}s"]}


def diff_runs(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """``a`` and ``b`` are run records. Every parameter, input, output and metric of either run
    appears once, with both values and whether they match."""
    header_keys = ("run_id", "stage", "status", "flow_run_id", "code_version", "started_at", "ended_at")
    return {
        "runs": side_by_side({k: str(a[k]) for k in header_keys}, {k: str(b[k]) for k in header_keys}),
        "params": side_by_side(flatten(a["params"]), flatten(b["params"])),
        "inputs": side_by_side(edge_map(a, "input"), edge_map(b, "input")),
        "outputs": side_by_side(edge_map(a, "output"), edge_map(b, "output")),
        "metrics": metric_rows(a["metrics"], b["metrics"]),
    }
