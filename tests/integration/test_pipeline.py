"""The whole think-anywhere flow on configs/tiny.yaml, for real: Prefect, TRL, DuckDB, sandbox."""

import json
import math

import pytest
from conftest import PROJECT_ROOT
from typer.testing import CliRunner


@pytest.fixture(scope="module")
def tiny_runs(prefect_harness, tmp_path_factory):
    """Run the tiny pipeline twice in one fresh THINKFLOW_HOME; keep both summaries."""
    from flows.think_anywhere import think_anywhere
    from storage import ArtifactStore

    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("THINKFLOW_HOME", str(home))
        first = think_anywhere(config=str(PROJECT_ROOT / "configs" / "tiny.yaml"))
        artifacts_after_first = ArtifactStore().all_ids()
        second = think_anywhere(config=str(PROJECT_ROOT / "configs" / "tiny.yaml"))
        artifacts_after_second = ArtifactStore().all_ids()
        yield {
            "home": home,
            "first": first,
            "second": second,
            "artifacts": (artifacts_after_first, artifacts_after_second),
            "patch": patch,
        }


def stage_ids(summary, stage):
    return next(s["artifact_ids"] for s in summary["stages"] if s["stage"] == stage)


def shard_stage(summary, prefix):
    return next(s for s in summary["stages"] if s["stage"].startswith(prefix + " ("))


def test_every_stage_produced_an_artifact(tiny_runs):
    from storage import ArtifactStore

    first = tiny_runs["first"]
    stages = [s["stage"] for s in first["stages"]]
    solutions, coldstart = shard_stage(first, "solutions"), shard_stage(first, "cold-start")
    assert stages == [
        "base model",
        "problems",
        "filter",
        "split",
        solutions["stage"],
        "train split with solutions",
        coldstart["stage"],
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
    published = Artifact.get("problem-filter-report")
    assert published is not None and published.type == "table"
    assert json.loads(published.data) == table


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
    runs = sum(len(s["artifact_ids"]) if " shards)" in s["stage"] else 1 for s in first["stages"])
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
    warned = [w for w in tiny_runs["first"]["warnings"] if w.startswith("rl ")]
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


def test_lineage_cli_shows_the_chain(tiny_runs):
    from flows.cli import app

    report = stage_ids(tiny_runs["first"], "evaluate rl")[0]
    rl = stage_ids(tiny_runs["first"], "rl")[0]
    tiny_runs["patch"].setenv("THINKFLOW_HOME", str(tiny_runs["home"]))
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
    from pathlib import Path

    from prefect.artifacts import Artifact

    graph = tiny_runs["first"]["lineage_graph"]
    assert graph["artifact_id"] == stage_ids(tiny_runs["first"], "compare")[0]
    assert Path(graph["png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and Path(graph["png"]).is_relative_to(
        tiny_runs["home"]
    )
    linked = Artifact.get("think-anywhere-lineage")
    assert (
        linked is not None and Path(graph["png"]).as_uri() in linked.data
    )  # Prefect stores a link artifact as markdown


def copy_of_the_project(target):
    """The project's code and recipes, as a checkout would have them (no venv, no store)."""
    import shutil

    for folder in ("flows", "tasks", "sandbox", "storage", "configs"):
        shutil.copytree(PROJECT_ROOT / folder, target / folder, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def test_a_changed_helper_reruns_the_stages_that_reach_it_and_only_those(tiny_runs, tmp_path):
    """Change a helper the cold-start stage reaches only through another module (the stage's task
    module is tasks/coldstart/build.py; the helper is in tasks/coldstart/insertion_sites.py) in a
    copy of the project, and run the tiny pipeline from that copy on the same store and Prefect
    results: the cold-start stage and everything after it re-run, every stage before it, and the
    base model's evaluation, come from the cache. No module list names insertion_sites."""
    import os
    import subprocess
    import sys

    from prefect.settings import get_current_settings

    copy = copy_of_the_project(tmp_path / "checkout")
    helper = copy / "tasks" / "coldstart" / "insertion_sites.py"
    source = helper.read_text()
    highest_first = "    scored.sort(reverse=True)\n"
    assert highest_first in source
    helper.write_text(
        source.replace(highest_first, "    scored.sort()  # the least certain positions last: a changed rule\n")
    )
    settings = get_current_settings()
    env = {
        **os.environ,
        "PYTHONPATH": str(copy),
        "THINKFLOW_HOME": str(tiny_runs["home"]),
        "PREFECT_API_URL": str(settings.api.url),
        "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(settings.results.local_storage_path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "flows.cli", "run", "think-anywhere", "--config", "configs/tiny.yaml", "--json"],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rerun = json.loads(done.stdout)
    first = {s["stage"]: s for s in tiny_runs["first"]["stages"]}
    cached = {s["stage"]: s["cached"] for s in rerun["stages"]}
    names = list(cached)
    after_coldstart = names[names.index(shard_stage(rerun, "cold-start")["stage"]) :]
    assert [n for n in names if cached[n]] == [
        n for n in names if n not in after_coldstart or n in ("eval set", "evaluate base")
    ]
    assert not any(cached[n] for n in after_coldstart if n not in ("eval set", "evaluate base"))
    assert (
        stage_ids(rerun, "cold-start set") != first["cold-start set"]["artifact_ids"]
    )  # the new rule chose other sites
    assert (
        stage_ids(rerun, "split") == first["split"]["artifact_ids"]
        and stage_ids(rerun, "evaluate base") == first["evaluate base"]["artifact_ids"]
    )
