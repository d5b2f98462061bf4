"""The whole think-anywhere flow on configs/tiny.yaml, for real: Prefect, TRL, DuckDB, sandbox
(the ``tiny_runs`` fixture, tests/conftest.py)."""

import json
import math

from pipeline_copies import copy_of_the_project, rerun_from, shard_stage, stage_ids
from typer.testing import CliRunner


def test_every_stage_produced_an_artifact(tiny_runs):
    from storage import ArtifactStore

    first = tiny_runs["first"]
    stages = [s["label"] for s in first["stages"]]
    solutions, coldstart = shard_stage(first, "solutions"), shard_stage(first, "cold-start")
    assert stages == [
        "base model",
        "problems",
        "filter",
        "split",
        solutions["label"],
        "train split with solutions",
        coldstart["label"],
        "cold-start set",
        "sft",
        "rl",
        "eval set",
        "evaluate base",
        "evaluate sft",
        "evaluate rl",
        "compare",
    ]
    assert not any(s["cached"] for s in first["stages"])
    produced = {a for s in first["stages"] for a in s["artifact_ids"]}
    extra = set(tiny_runs["artifacts"][0]) - produced
    assert produced <= set(tiny_runs["artifacts"][0])
    assert [ArtifactStore(tiny_runs["home"]).get(a).name for a in extra] == ["grpo-curves"]  # the RL run's PNGs
    shards = len(solutions["artifact_ids"]) + len(coldstart["artifact_ids"])
    assert len(solutions["artifact_ids"]) == 2 and len(coldstart["artifact_ids"]) >= 2
    assert len(produced) == 14 + shards


def test_rejection_sampling_recorded_a_pass_rate_for_every_train_problem(tiny_runs):
    from storage import ArtifactStore

    store = ArtifactStore(tiny_runs["home"])
    train, _ = stage_ids(tiny_runs["first"], "split")
    solved = stage_ids(tiny_runs["first"], "train split with solutions")[0]
    before = [json.loads(l) for l in (store.path(train) / "problems.jsonl").read_text().splitlines()]
    after = [json.loads(l) for l in (store.path(solved) / "problems.jsonl").read_text().splitlines()]
    samples = [json.loads(l) for l in (store.path(solved) / "samples.jsonl").read_text().splitlines()]
    assert [p["id"] for p in after] == [p["id"] for p in before] == [s["problem_id"] for s in samples]
    for problem, result in zip(after, samples):
        assert len(result["samples"]) == 2
        assert problem["meta"]["sampled_pass_rate"] == sum(s["status"] == "passed" for s in result["samples"]) / 2
        assert problem["reference"] == next(p for p in before if p["id"] == problem["id"])["reference"]


def test_coldstart_set_is_the_concatenation_of_its_shards(tiny_runs):
    from storage import ArtifactStore, LineageStore

    store = ArtifactStore(tiny_runs["home"])
    shards = shard_stage(tiny_runs["first"], "cold-start")["artifact_ids"]
    coldstart = stage_ids(tiny_runs["first"], "cold-start set")[0]
    rows = (store.path(coldstart) / "train.jsonl").read_text().splitlines()
    assert rows == [line for shard in shards for line in (store.path(shard) / "records.jsonl").read_text().splitlines()]
    lineage = LineageStore(tiny_runs["home"] / "lineage.duckdb")
    per_shard = [lineage.metrics_of(s) for s in shards]
    total = lineage.metrics_of(coldstart)
    assert total["accepted"] == sum(m["accepted"] for m in per_shard) == len(rows)
    assert total["solutions_in"] == sum(m["solutions_in"] for m in per_shard)


def test_filter_stage_report_reconciles_and_is_a_prefect_table(tiny_runs):
    from prefect.artifacts import Artifact

    from storage import ArtifactStore

    filtered = stage_ids(tiny_runs["first"], "filter")[0]
    folder = ArtifactStore(tiny_runs["home"]).path(filtered)
    table = json.loads((folder / "report.json").read_text())
    kept = len((folder / "problems.jsonl").read_text().splitlines())
    assert sum(r["rows"] for r in table if r["outcome"] == "kept") == kept > 0
    for source in {r["source"] for r in table}:
        rows_in = sum(r["rows"] for r in table if r["source"] == source and r["outcome"] == "in")
        assert rows_in == sum(r["rows"] for r in table if r["source"] == source and r["outcome"] != "in")
    published = Artifact.get("think-anywhere-filter")  # the flow's artifact for its `filter` stage
    assert published is not None and published.type == "markdown"
    for row in table:
        assert f"| {row['source']} | {row['outcome']} | {row['reason']} | {row['rows']} |" in published.data


def test_second_run_is_fully_cached_and_adds_nothing(tiny_runs):
    second = tiny_runs["second"]
    assert all(s["cached"] for s in second["stages"]) and second["all_cached"]
    assert tiny_runs["artifacts"][1] == tiny_runs["artifacts"][0]
    assert [s["artifact_ids"] for s in second["stages"]] == [s["artifact_ids"] for s in tiny_runs["first"]["stages"]]


def test_lineage_chain_from_report_to_problems_and_base_model(tiny_runs):
    from storage import LineageStore

    first = tiny_runs["first"]
    lineage = LineageStore(tiny_runs["home"] / "lineage.duckdb")
    report, rl, sft = stage_ids(first, "evaluate rl")[0], stage_ids(first, "rl")[0], stage_ids(first, "sft")[0]
    coldstart, base = stage_ids(first, "cold-start set")[0], stage_ids(first, "base model")[0]
    train, _ = stage_ids(first, "split")
    problems, filtered = stage_ids(first, "problems")[0], stage_ids(first, "filter")[0]
    eval_set, comparison = stage_ids(first, "eval set")[0], stage_ids(first, "compare")[0]
    links = {(l.artifact_id, l.stage, l.parent_id) for l in lineage.upstream(comparison)}
    solved = stage_ids(first, "train split with solutions")[0]
    for link in [
        (comparison, "compare_evaluations", report),
        (report, "evaluate", eval_set),
        (eval_set, "eval_set", problems),
        (report, "evaluate", rl),
        (rl, "grpo", sft),
        (sft, "sft", coldstart),
        (sft, "sft", base),
        (rl, "grpo", solved),
        (coldstart, "coldstart", solved),
        (solved, "attach_solutions", train),
        (train, "split_problems", filtered),
        (filtered, "filter_problems", problems),
    ]:
        assert link in links, link
    runs = sum(len(s["artifact_ids"]) if " shards)" in s["label"] else 1 for s in first["stages"])
    assert lineage.counts()["runs"] == runs  # one per executed stage or shard; the cached second run added none


def test_sft_loss_is_finite_and_recorded_per_step(tiny_runs):
    from storage import LineageStore

    sft = stage_ids(tiny_runs["first"], "sft")[0]
    lineage = LineageStore(tiny_runs["home"] / "lineage.duckdb")
    metrics = lineage.metrics_of(sft)
    assert math.isfinite(metrics["loss_first"]) and math.isfinite(metrics["loss_last"])
    assert [step for step, _ in lineage.metric_series(sft, "loss")] == [1, 2, 3, 4]


def test_rl_records_its_signal_per_step(tiny_runs):
    from storage import LineageStore

    rl = stage_ids(tiny_runs["first"], "rl")[0]
    lineage = LineageStore(tiny_runs["home"] / "lineage.duckdb")
    metrics = lineage.metrics_of(rl)
    for name in ("no_signal_groups", "truncated", "reward_correct", "reward_upfront_think", "reward_inline_think"):
        assert [step for step, _ in lineage.metric_series(rl, name)] == [1, 2], name
    assert 0 <= metrics["no_signal_groups_mean"] <= 1 and 0 <= metrics["truncated_mean"] <= 1
    warned = [w for w in tiny_runs["first"]["warnings"] if w.startswith("grpo: rl ")]
    assert bool(warned) == (metrics["no_signal_groups_mean"] > 0.5 or metrics["truncated_mean"] > 0.5)


def test_coldstart_samples_carry_inline_thoughts_that_strip_to_passing_code(tiny_runs):
    from storage import ArtifactStore
    from tasks.thinking import has_inline_thought_in_statement, has_upfront_think

    coldstart = stage_ids(tiny_runs["first"], "cold-start set")[0]
    rows = [
        json.loads(l)
        for l in (ArtifactStore(tiny_runs["home"]).path(coldstart) / "train.jsonl").read_text().splitlines()
    ]
    assert rows
    for row in rows:
        response = row["completion"][0]["content"]
        assert has_upfront_think(response) and has_inline_thought_in_statement(response)


def test_eval_reports_score_every_held_out_problem_and_the_comparison_has_plots(tiny_runs):
    import pyarrow.parquet as pq

    from storage import ArtifactStore
    from tasks.problems.catalog import split_of

    store = ArtifactStore(tiny_runs["home"])
    loaded = store.path(stage_ids(tiny_runs["first"], "problems")[0]) / "problems.jsonl"
    held_out = {
        json.loads(l)["id"] for l in loaded.read_text().splitlines() if split_of(json.loads(l)["id"], 0.3, 0) == "eval"
    }
    for stage in ("evaluate base", "evaluate sft", "evaluate rl"):
        folder = store.path(stage_ids(tiny_runs["first"], stage)[0])
        report = json.loads((folder / "report.json").read_text())
        assert sorted(i for ids in report["problem_ids"].values() for i in ids) == sorted(held_out)
        samples = pq.read_table(folder / "samples.parquet").to_pylist()
        assert sorted(s["problem_id"] for s in samples) == sorted(held_out)  # greedy: one sample each
        assert all(s["status"] in ("passed", "failed", "timeout", "memory", "error") for s in samples)
        assert (
            report["pass_at_k"]["all"]["problems"] == len(held_out) and 0 <= report["pass_at_k"]["all"]["pass@1"] <= 1
        )
        assert report["thinking"]["responses"] == len(held_out)
    comparison = tiny_runs["first"]["comparison"]
    assert [row[:2] for row in comparison["rows"]] == [["base", "thinking"], ["sft", "thinking"], ["rl", "thinking"]]
    pairs = {(p["checkpoint"], p["baseline"]): p["by_benchmark"]["all"] for p in comparison["paired"]}
    assert set(pairs) == {
        ("sft", "base"),
        ("rl", "base"),
        ("rl", "sft"),
    }  # each checkpoint against every earlier one, same problems
    assert all(pair["problems"] == len(held_out) and pair["unpaired"] == 0 for pair in pairs.values())
    folder = store.path(comparison["artifact_id"])
    assert (folder / "pass_at_1.png").stat().st_size > 10_000 and (folder / "think_tokens.png").exists()


def test_lineage_cli_shows_the_chain(tiny_runs, monkeypatch):
    from flows.cli import app

    report = stage_ids(tiny_runs["first"], "evaluate rl")[0]
    rl = stage_ids(tiny_runs["first"], "rl")[0]
    monkeypatch.setenv("THINKFLOW_HOME", str(tiny_runs["home"]))
    result = CliRunner().invoke(app, ["lineage", "upstream", report])
    assert result.exit_code == 0, result.output
    for name in ("grpo", "sft", "coldstart", "problems-train", "base:tiny"):
        assert name in result.output
    as_json = CliRunner().invoke(app, ["lineage", "downstream", rl, "--json"])
    assert {l["artifact_id"] for l in json.loads(as_json.output)} == {
        report,
        stage_ids(tiny_runs["first"], "compare")[0],
    }
    shown = CliRunner().invoke(app, ["lineage", "show", report, "--json"])
    assert json.loads(shown.output)["stage"] == "evaluate"


def test_the_run_links_a_png_of_the_final_artifacts_lineage_graph(tiny_runs):
    import base64
    from pathlib import Path

    from prefect.artifacts import Artifact

    graph = tiny_runs["first"]["lineage_graph"]
    assert graph["artifact_id"] == stage_ids(tiny_runs["first"], "compare")[0]
    assert Path(graph["png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and Path(graph["png"]).is_relative_to(
        tiny_runs["home"]
    )
    shown = Artifact.get("think-anywhere-lineage")
    assert shown is not None and graph["artifact_id"] in shown.data
    assert (
        base64.b64encode(Path(graph["png"]).read_bytes()).decode() in shown.data
    )  # the PNG inline, not a file:// link


def test_the_prefect_ui_shows_each_stage_by_name_with_its_plots_inline_under_keys_of_its_own(tiny_runs):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from flows.runtime.prefect_artifacts import MAX_COLUMNS
    from storage import LineageStore

    lineage = LineageStore(tiny_runs["home"] / "lineage.duckdb")
    sft = stage_ids(tiny_runs["first"], "sft")[0]
    flow_run_id = lineage.run(lineage.artifact(sft)["created_by_run"])["flow_run_id"]
    with get_client(sync_client=True) as client:
        runs = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        names = {task_run.name for task_run in client.read_task_runs(flow_run_filter=runs)}
        artifacts = {a.key: a for a in client.read_artifacts(flow_run_filter=runs) if a.key}
        everywhere = client.read_artifacts()
        flow_names = {
            run.id: client.read_flow(run.flow_id).name
            for run in client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    id=FlowRunFilterId(any_=sorted({a.flow_run_id for a in everywhere if a.flow_run_id}))
                )
            )
        }
    assert {
        "evaluate base",
        "evaluate sft",
        "evaluate rl",
        "sft",
        "grpo: rl",
        "compare_evaluations: compare",
    } <= names  # the stage and which checkpoint, at a glance
    assert all(key.startswith("think-anywhere-") for key in artifacts)
    assert {
        "think-anywhere-rl",
        "think-anywhere-compare",
        "think-anywhere-evaluate-rl",
        "think-anywhere-summary",
    } <= set(artifacts)
    assert (
        "![reward.png](data:image/png;base64," in artifacts["think-anywhere-rl"].data
    )  # the RL curves, beside the checkpoint
    assert "![pass_at_1.png](data:image/png;base64," in artifacts["think-anywhere-compare"].data
    assert not any("file://" in (a.data or "") for a in artifacts.values())
    table_lines = [line for line in artifacts["think-anywhere-compare"].data.splitlines() if line.startswith("|")]
    assert (
        table_lines and max(line.count("|") - 1 for line in table_lines) <= MAX_COLUMNS
    )  # no table wider than the page
    keys_by_flow = {}
    for artifact in everywhere:
        if artifact.key and artifact.flow_run_id in flow_names:
            keys_by_flow.setdefault(artifact.key, set()).add(flow_names[artifact.flow_run_id])
    assert all(len(flows) == 1 for flows in keys_by_flow.values()), {
        k: f for k, f in keys_by_flow.items() if len(f) > 1
    }


def test_each_stage_has_one_name_in_lineage_the_summary_and_the_task_runs(tiny_runs):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from flows.cli import app
    from tasks.stage_run import task_run_name

    summary = tiny_runs["first"]
    home = tiny_runs["home"]
    shown = CliRunner().invoke(app, ["lineage", "runs", "--limit", "500", "--json"], env={"THINKFLOW_HOME": str(home)})
    assert shown.exit_code == 0, shown.output
    flow_run_id = next(
        run["flow_run_id"] for run in json.loads(shown.output) if stage_ids(summary, "sft")[0] in run["outputs"]
    )
    recorded = [run for run in json.loads(shown.output) if run["flow_run_id"] == flow_run_id]
    with get_client(sync_client=True) as client:
        runs = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        task_runs = {task_run.name for task_run in client.read_task_runs(flow_run_filter=runs)}
    # one lineage run per artifact-producing task run, each under the stage's declared name and the flow's label
    assert {task_run_name(run["stage"], run["label"]) for run in recorded} == task_runs
    summary_names = {s["stage"] for s in summary["stages"]}
    assert {run["stage"] for run in recorded} == summary_names
    for stage in summary["stages"]:
        labels = {run["label"] for run in recorded if set(run["outputs"]) & set(stage["artifact_ids"])}
        if stage["label"].endswith(" shards)"):
            base = stage["label"].rsplit(" (", 1)[0]
            assert all(label.startswith(base + " ") for label in labels), (stage, labels)
        else:
            assert labels == {stage["label"]}, (stage, labels)


def test_an_edit_re_runs_only_the_stages_that_execute_the_edited_code(tiny_runs, tmp_path):
    """The Docker backend, edited, with `backend: local`: nothing re-runs (it is counted only where a recipe
    picks it). A reward term, edited: RL re-runs, and no stage before it (SFT launches the same worker
    process, but not the GRPO trainer that imports the rewards)."""
    copy = copy_of_the_project(tmp_path / "checkout")
    docker = copy / "sandbox" / "docker_backend.py"
    docker.write_text(docker.read_text() + "\n# an edit to the Docker backend\n")
    untouched = rerun_from(copy, tiny_runs)
    assert untouched["all_cached"], [s["label"] for s in untouched["stages"] if not s["cached"]]
    rewards = copy / "tasks" / "training" / "reward_terms.py"  # the registry a recipe validates its weights with
    source = rewards.read_text()
    term = "    return [1.0 if format_credit(completion_text(c)).upfront_think else 0.0 for c in completions]\n"
    assert term in source
    rewards.write_text(source.replace(term, term.replace("1.0 if", "0.5 if")))
    edited = rerun_from(copy, tiny_runs)
    cached = {s["label"]: s["cached"] for s in edited["stages"]}
    names = list(cached)
    assert not cached["rl"] and all(cached[name] for name in names[: names.index("rl")]), cached
