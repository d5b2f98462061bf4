"""Run a flow's stages and keep, for the summary, what each produced and whether it was cached.

A stage has one name, declared on its task (``tasks.stage_run.stage``): the Prefect task's, the
lineage record's and the summary's ``stage``. The flow gives each use of a stage a label ("rl",
"rlvr (code) from base"): the task run is named ``stage: label``, and the lineage record and the
summary carry the label beside the name."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect.logging import get_run_logger

from flows.runtime.fan_out import run_fan_out
from flows.runtime.prefect_artifacts import artifact_key, png_markdown, publish_markdown, publish_stage
from storage import ArtifactStore, LineageStore
from tasks.recipe import RunnerConfig, TrackingConfig
from tasks.stage_run import task_run_name
from tasks.tracking import require_tracker, tracking_stage

KEY_METRICS = (
    "pass@1",
    "pass@1/humaneval",
    "pass@1/leetcode",
    "problems",
    "kept",
    "filtered",
    "quarantined",
    "sampled_problems",
    "solved",
    "accepted",
    "acceptance_rate",
    "thoughts_per_sample",
    "loss_first",
    "loss_last",
    "reward_first",
    "reward_last",
    "reward_gain",
    "steps",
    "parameters",
    "new_pass@1",
    "previous_best_pass@1",
    "improved",
    "evaluations",  # the comparison stages: their table is the result (their paired metrics' names are long)
    "models",
)


@dataclass
class StageResult:
    stage: str  # the stage's declared name
    label: str  # the flow's name for this use of it
    artifact_ids: list[str]
    cached: bool
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # artifact id -> metrics

    @property
    def run_name(self) -> str:
        return task_run_name(self.stage, self.label)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "label": self.label,
            "artifact_ids": self.artifact_ids,
            "cached": self.cached,
            "metrics": self.metrics,
        }


class StageLog:
    def __init__(self, pipeline: str, runner: RunnerConfig | None = None, tracking: TrackingConfig | None = None):
        self.pipeline = pipeline
        self.runner = runner or RunnerConfig()
        self.tracking = tracking or TrackingConfig()
        require_tracker(self.tracking)
        self.results: list[StageResult] = []

    def tracked(self, stage: str):
        """The stage's runs report to the recipe's tracker while it runs (tasks/tracking.py)."""
        return tracking_stage(self.tracking, ArtifactStore().home, self.pipeline, stage)

    def run(self, label: str, task, *args: Any) -> Any:
        """Call the stage's task under ``label``; a failed stage raises its own error, a finished one is logged."""
        with self.tracked(label):  # the task run is "stage: label" ("grpo: rl"), in the UI and in its log lines
            state = task.with_options(task_run_name=task_run_name(task.name, label))(*args, return_state=True)
        value = state.result(raise_on_failure=True)
        ids = list(value) if isinstance(value, (tuple, list)) else [value]
        self.results.append(StageResult(task.name, label, ids, cached=state.name == "Cached"))
        publish_stage(self.pipeline, label, ids, state.name == "Cached")
        return value

    def run_shards(self, label: str, task, shards: int, parallel: int, **arguments: Any) -> list[str]:
        """One run of ``task`` per shard (passed as ``shard=``), ``parallel`` at a time on the
        recipe's task runner; each shard is cached on its own. Returns the shards' artifact ids in order."""
        with self.tracked(label):
            outcomes = run_fan_out(self.runner, label, task, shards, parallel, arguments)
        ids = [artifact_id for artifact_id, _ in outcomes]
        cached = all(c for _, c in outcomes)
        self.results.append(StageResult(task.name, f"{label} ({shards} shards)", ids, cached=cached))
        publish_stage(self.pipeline, label, ids, cached)
        return ids

    def finish(self, comparison: str | None = None, outputs: dict[str, str] | None = None) -> dict[str, Any]:
        """Attach each artifact's recorded metrics, publish the table, return the JSON summary
        (with the evaluation comparison's table when one was made, and ``outputs``: the pipeline's
        result ids by role, e.g. ``final_checkpoint``)."""
        store = ArtifactStore()
        lineage = LineageStore(store.lineage_path)
        for result in self.results:
            result.metrics = {artifact_id: lineage.metrics_of(artifact_id) for artifact_id in result.artifact_ids}
        summary = {
            "pipeline": self.pipeline,
            "home": str(store.home),
            "stages": [r.to_dict() for r in self.results],
            "all_cached": all(r.cached for r in self.results),
            "outputs": dict(outputs or {}),
            "warnings": stage_warnings(self.results),
        }
        if comparison:
            summary["comparison"] = {
                "artifact_id": comparison,
                "folder": str(store.path(comparison)),
                **json.loads((store.path(comparison) / "comparison.json").read_text()),
            }
        final = comparison or next((r.artifact_ids[0] for r in reversed(self.results) if r.artifact_ids), None)
        if final:
            summary["lineage_graph"] = {
                "artifact_id": final,
                "png": str(publish_lineage_graph(self.pipeline, store, lineage, final)),
            }
        try:
            get_run_logger().info("%s summary\n%s", self.pipeline, summary_markdown(summary))
        except Exception:  # noqa: BLE001 - outside a flow run there is no run logger
            pass
        publish_markdown(artifact_key(self.pipeline, "summary"), summary_markdown(summary), "stage summary")
        return summary


def stage_warnings(results: list[StageResult]) -> list[str]:
    """What the summary must point out: RL stages whose groups mostly carried no signal, or whose
    completions were mostly cut at the length cap."""
    from tasks.training.rl import rl_warnings

    return [
        f"{result.run_name} ({artifact_id}): {warning}"
        for result in results
        for artifact_id in result.artifact_ids
        for warning in rl_warnings(result.metrics.get(artifact_id, {}))
    ]


def publish_lineage_graph(pipeline: str, store: ArtifactStore, lineage: LineageStore, artifact_id: str) -> Path:
    """Draw the final artifact's lineage graph under THINKFLOW_HOME/lineage-graphs and show it in a
    Prefect markdown artifact (the PNG inline). A view of lineage, redrawn per run: not itself an artifact."""
    from tasks.lineage_graph import draw_lineage_graph

    path = draw_lineage_graph(lineage, artifact_id, store.home / "lineage-graphs" / f"{artifact_id}.png")
    publish_markdown(
        artifact_key(pipeline, "lineage"),
        f"## Lineage of `{artifact_id}`\n\nwhat it was made from and what was made "
        f"from it (`thinkflow lineage show {artifact_id}`); the file: `{path}`\n\n{png_markdown(path)}",
        f"lineage graph of {artifact_id}",
    )
    return path


def format_metric(value: float) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return "nan"
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.4g}"


def key_metrics(metrics: dict[str, float]) -> str:
    """Up to five of the stage's headline metrics and the reward terms registered to be summarised
    (tasks/training/reward_terms.py); a stage with none of them (a corpus, a judge) shows its first four."""
    from tasks.training.reward_terms import TERMS

    terms = [f"{t.series}_last" for t in TERMS.values() if t.summarised and f"{t.series}_last" in metrics]
    keys = [k for k in KEY_METRICS if k in metrics][:5] + terms or sorted(metrics)[:4]
    return ", ".join(f"{k}={format_metric(metrics[k])}" for k in keys)


def summary_rows(summary: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    rows = []
    for stage in summary["stages"]:
        for artifact_id in stage["artifact_ids"]:
            rows.append(
                (
                    task_run_name(stage["stage"], stage["label"]),
                    artifact_id,
                    "yes" if stage["cached"] else "no",
                    key_metrics(stage["metrics"][artifact_id]),
                )
            )
    return rows


def summary_markdown(summary: dict[str, Any]) -> str:
    lines = ["| stage | artifact | cached | key metrics |", "|---|---|---|---|"]
    lines += [f"| {s} | `{a}` | {c} | {m} |" for s, a, c, m in summary_rows(summary)]
    lines += [f"\n**warning:** {warning}" for warning in summary.get("warnings", [])]
    if "lineage_graph" in summary:
        lines += [
            "",
            f"Lineage graph of `{summary['lineage_graph']['artifact_id']}`: the `{artifact_key(summary['pipeline'], 'lineage')}` "
            f"artifact, and `{summary['lineage_graph']['png']}`",
        ]
    return "\n".join(lines)


def print_summary(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"{summary['pipeline']} — artifacts in {summary['home']}")
    for column in ("stage", "artifact", "cached", "key metrics"):
        table.add_column(column, overflow="fold")
    for row in summary_rows(summary):
        table.add_row(*row)
    console = Console(width=200)
    console.print(table)
    if "comparison" in summary:
        title = Text(f"evaluation: pass@1 [bootstrap interval over problems] — {summary['comparison']['artifact_id']}")
        comparison = Table(title=title)
        for column in summary["comparison"]["header"]:
            comparison.add_column(column, overflow="fold")
        for row in summary["comparison"]["rows"]:
            comparison.add_row(*row)
        console.print(comparison)
        if summary["comparison"].get("paired_rows"):
            paired = Table(
                title=Text(
                    "paired on the same problems: Δ pass@1 [bootstrap interval] (solved only by it / by the other)"
                )
            )
            for column in summary["comparison"]["paired_header"]:
                paired.add_column(column, overflow="fold")
            for row in summary["comparison"]["paired_rows"]:
                paired.add_row(*row)
            console.print(paired)
        console.print(f"plots: {summary['comparison']['folder']}/*.png")
    if "lineage_graph" in summary:
        console.print(Text(f"lineage graph: {summary['lineage_graph']['png']}"))
    for warning in summary.get("warnings", []):
        console.print(Text(f"warning: {warning}", style="bold yellow"))
    if "retrain" in summary:
        retrain = summary["retrain"]
        best = retrain["best_checkpoint"]
        console.print(Text(f"retrain: {retrain['message']}"))
        if best:
            console.print(
                Text(
                    f"best checkpoint on record: {best['checkpoint']} ({best['report']}: pass@1 = {best['value']:.4f})"
                )
            )
