"""Runs as OpenLineage-style RunEvents, for teams that already run a lineage service (Marquez,
DataHub, …): each run becomes a START event at its start and a COMPLETE or FAIL event at its end;
the job is ``<namespace>.<stage>``; datasets are artifact ids with their kind, version and location
in a facet; params, metrics and the Prefect flow run travel as run facets. One JSON object per
line; POST them in order to the service's ``/api/v1/lineage``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

SPEC = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/definitions/RunEvent"
PRODUCER = "https://github.com/thinkflow/thinkflow"
FACET_SCHEMA = "https://github.com/thinkflow/thinkflow/blob/main/storage/openlineage.py"


def iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def as_uuid(run_id: str) -> str:
    """OpenLineage run ids are UUIDs; ours are uuid4 hex, Prefect's already dashed."""
    try:
        return str(uuid.UUID(run_id))
    except ValueError:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, run_id))


def facet(**fields: Any) -> dict[str, Any]:
    return {"_producer": PRODUCER, "_schemaURL": FACET_SCHEMA, **fields}


def dataset(edge: dict[str, Any], artifacts: dict[str, dict[str, Any]], namespace: str) -> dict[str, Any]:
    known = artifacts.get(edge["artifact_id"], {})
    return {
        "namespace": namespace,
        "name": edge["artifact_id"],
        "facets": {
            "thinkflow_artifact": facet(
                kind=known.get("kind"),
                artifact_name=known.get("name"),
                version=known.get("version"),
                uri=known.get("uri"),
                role=edge["role"],
            )
        },
    }


def run_events(
    run: dict[str, Any], artifacts: dict[str, dict[str, Any]], namespace: str = "thinkflow"
) -> list[dict[str, Any]]:
    """START and COMPLETE/FAIL for one run record (:meth:`LineageStore.run`)."""
    run_facets: dict[str, Any] = {
        "thinkflow_params": facet(params=run["params"], code_version=run["code_version"]),
    }
    if run.get("flow_run_id"):
        run_facets["parent"] = {
            "_producer": PRODUCER,
            "_schemaURL": "https://openlineage.io/spec/facets/1-1-0/ParentRunFacet.json#/$defs/ParentRunFacet",
            "run": {"runId": as_uuid(run["flow_run_id"])},
            "job": {"namespace": namespace, "name": "prefect-flow-run"},
        }
    job = {"namespace": namespace, "name": f"{namespace}.{run['stage']}"}
    inputs = [dataset(edge, artifacts, namespace) for edge in run["inputs"]]
    start = {
        "eventType": "START",
        "eventTime": iso(run["started_at"]),
        "run": {"runId": as_uuid(run["run_id"]), "facets": run_facets},
        "job": job,
        "inputs": inputs,
        "outputs": [],
        "producer": PRODUCER,
        "schemaURL": SPEC,
    }
    end_facets = dict(run_facets)
    if run["metrics"]:
        end_facets["thinkflow_metrics"] = facet(metrics=run["metrics"])
    end = {
        "eventType": "COMPLETE" if run["status"] == "completed" else "FAIL",
        "eventTime": iso(run["ended_at"]),
        "run": {"runId": as_uuid(run["run_id"]), "facets": end_facets},
        "job": job,
        "inputs": inputs,
        "outputs": [dataset(edge, artifacts, namespace) for edge in run["outputs"]],
        "producer": PRODUCER,
        "schemaURL": SPEC,
    }
    return [start, end]


def lineage_events(store, since: datetime | None = None, namespace: str = "thinkflow") -> list[dict[str, Any]]:
    """Every run of a :class:`LineageStore` that ended at or after ``since``, oldest first, as events."""
    runs = store.runs(store.run_ids(since))
    artifacts = store.artifacts(
        sorted({edge["artifact_id"] for run in runs for edge in run["inputs"] + run["outputs"]})
    )
    return [event for run in runs for event in run_events(run, artifacts, namespace)]
