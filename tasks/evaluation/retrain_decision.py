"""Scheduled retraining's bookkeeping: which checkpoint is the best on record, and whether a new
one beats it.

Each decision is a ``retrain-decision`` report artifact whose inputs are the new checkpoint and
its evaluation and, when there was one, the previous best and its evaluation on the same eval set.
Its ``decision.json`` names the best checkpoint from then on, so the next retrain reads the best
on record from lineage (the newest decision) and nothing else.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from storage import ArtifactStore, LineageStore
from tasks.stage_run import StageRun, stage

DECISION = "retrain-decision"


def best_on_record(store: ArtifactStore, lineage: LineageStore) -> dict[str, Any] | None:
    """The best checkpoint and its report according to the newest retrain decision, or None."""
    latest = lineage.latest_artifact(DECISION, kind="report")
    if latest is None or not store.exists(latest["artifact_id"]):
        return None
    best = json.loads((store.path(latest["artifact_id"]) / "decision.json").read_text())["best"]
    if not store.exists(best["checkpoint"]):
        logging.getLogger("thinkflow").warning(
            "retrain: the best checkpoint on record, %s, is no longer in %s; comparing with none",
            best["checkpoint"],
            store.root,
        )
        return None
    return best


def decide(metric: str, new: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any]:
    """``new``/``previous``: {checkpoint, report, value}. The new checkpoint becomes the best when
    there is no previous one or it scores strictly higher; a tie keeps the incumbent."""
    improved = previous is None or new["value"] > previous["value"]
    return {
        "metric": metric,
        "new": new,
        "previous_best": previous,
        "best": new if improved else previous,
        "improved": improved,
    }


def metric_value(lineage: LineageStore, report_id: str, metric: str) -> float:
    metrics = lineage.metrics_of(report_id)
    if metric not in metrics:
        raise ValueError(f"report {report_id} has no metric {metric!r}; it has: {', '.join(sorted(metrics)) or 'none'}")
    return metrics[metric]


@stage(
    "retrain_decision",
    inputs={
        "new_checkpoint": "new_checkpoint",
        "new_report": "new_report",
        "previous_best_checkpoint": "best_checkpoint",
        "previous_best_report": "best_report",
    },
)
def record_retrain_decision(
    new_checkpoint: str, new_report: str, best_checkpoint: str | None, best_report: str | None, metric: str
) -> str:
    """Compare the new checkpoint with the previous best on ``metric`` (both evaluated on the same
    eval set) and record which is best now."""
    with StageRun() as run:
        new = {
            "checkpoint": new_checkpoint,
            "report": new_report,
            "value": metric_value(run.lineage, new_report, metric),
        }
        previous = None
        if best_checkpoint:
            previous = {
                "checkpoint": best_checkpoint,
                "report": best_report,
                "value": metric_value(run.lineage, best_report, metric),
            }
        decision = decide(metric, new, previous)
        run.log.info(
            "retrain: new %s %s = %.4f; previous best %s; best now %s",
            new_checkpoint,
            metric,
            new["value"],
            f"{best_checkpoint} = {previous['value']:.4f}" if previous else "none",
            decision["best"]["checkpoint"],
        )
        staged = run.staging("decision")
        (staged / "decision.json").write_text(json.dumps(decision, indent=1))
        metrics = {f"new_{metric}": new["value"], "improved": float(decision["improved"])}
        if previous:
            metrics[f"previous_best_{metric}"] = previous["value"]
        return run.output(
            "decision",
            staged,
            kind="report",
            name=DECISION,
            metadata={"best": decision["best"]["checkpoint"]},
            metrics=metrics,
        )
