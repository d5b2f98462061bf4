"""The evaluate flow on the tiny model, for real: three benchmarks (held-out HumanEval, the MBPP and
LiveCodeBench fixtures), sampled pass@2, the three baselines, the comparison, the CLI's
``--set checkpoints=[...]``, and decoding in a fresh process giving what the flow's process gives."""

import json

import pytest
from conftest import FIXTURES, PROJECT_ROOT
from typer.testing import CliRunner

SETTINGS = [
    f"evaluate.benchmarks=[{{name: humaneval, limit: 2}}, {{name: mbpp, source: 'mbpp:{FIXTURES / 'mbpp.jsonl'}'}}, "
    f"{{name: livecodebench, source: 'livecodebench:{FIXTURES / 'livecodebench.jsonl'}', limit: 2}}]",
    "evaluate.samples=2",
    "evaluate.temperature=1.0",
    "evaluate.k=[1,2]",
    "evaluate.max_new_tokens=24",
    "evaluate.baselines=[plain_prompt,no_thinking,think_budget]",
    "evaluate.think_budget_tokens=4",
    "evaluate.bootstrap_resamples=200",
    "evaluate.process=fresh",  # each evaluation decodes and scores in a new process (tiny.yaml: in the flow's)
]


@pytest.fixture(scope="module")
def evaluated(prefect_harness, tmp_path_factory):
    from flows.evaluate import evaluate

    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("THINKFLOW_HOME", str(home))
        summary = evaluate(config=str(PROJECT_ROOT / "configs" / "tiny.yaml"), overrides=SETTINGS)
        yield {"home": home, "summary": summary, "patch": patch}


def ids_of(summary, stage):
    return next(s["artifact_ids"] for s in summary["stages"] if s["label"] == stage)


def test_every_benchmark_variant_and_sample_is_scored(evaluated):
    import pyarrow.parquet as pq

    from storage import ArtifactStore
    from tasks.recipe import NO_THINKING_PREFILL

    summary, store = evaluated["summary"], ArtifactStore(evaluated["home"])
    assert [s["label"] for s in summary["stages"]] == [
        "base model",
        "problems",
        "benchmark problems",
        "eval set",
        "evaluate base",
        "evaluate base (plain_prompt)",
        "evaluate base (no_thinking)",
        "evaluate base (think_budget)",
        "compare",
    ]
    eval_set = store.path(ids_of(summary, "eval set")[0])
    ids = json.loads((eval_set / "ids.json").read_text())
    ledger = json.loads((store.path(ids_of(summary, "benchmark problems")[0]) / "ledger.json").read_text())
    mbpp_source = next(name for name in ledger["sources"] if name.startswith("mbpp:"))
    assert len(ids["humaneval"]) == 2 and len(ids["livecodebench"]) == 2
    assert (
        len(ids["mbpp"]) == ledger["sources"][mbpp_source]["problems"] > 0
    )  # the whole file, less its quarantined rows
    for stage in (
        "evaluate base",
        "evaluate base (plain_prompt)",
        "evaluate base (no_thinking)",
        "evaluate base (think_budget)",
    ):
        folder = store.path(ids_of(summary, stage)[0])
        report = json.loads((folder / "report.json").read_text())
        assert report["problem_ids"] == ids and report["eval_set"] == ids_of(summary, "eval set")[0]
        samples = pq.read_table(folder / "samples.parquet").to_pylist()
        assert len(samples) == 2 * sum(map(len, ids.values()))
        assert sorted({s["sample"] for s in samples}) == [0, 1]
        for bench in ("humaneval", "mbpp", "livecodebench", "all"):
            scores = report["pass_at_k"][bench]
            assert 0 <= scores["pass@1"] <= scores["pass@2"] <= 1
            assert scores["pass@1_ci"][0] <= scores["pass@1"] <= scores["pass@1_ci"][1]
        problems = pq.read_table(folder / "problems.parquet").to_pylist()
        assert len(problems) == sum(map(len, ids.values())) and all(p["samples"] == 2 for p in problems)
        if "no_thinking" in stage:
            assert all(s["response"].startswith(NO_THINKING_PREFILL) for s in samples)
            assert report["thinking"]["upfront_think_rate"] == 1.0  # the pre-filled (non-empty) thought
        if "plain_prompt" in stage:
            assert report["variant"]["system_prompt"].startswith("You are a careful Python programmer. Answer with")


def test_comparison_table_plots_and_lineage(evaluated):
    from storage import ArtifactStore, LineageStore

    summary, store = evaluated["summary"], ArtifactStore(evaluated["home"])
    comparison = summary["comparison"]
    assert [row[1] for row in comparison["rows"]] == ["thinking", "plain_prompt", "no_thinking", "think_budget"]
    assert comparison["header"][2:5] == ["pass@1 humaneval", "pass@1 livecodebench", "pass@1 mbpp"]
    folder = store.path(comparison["artifact_id"])
    assert (folder / "pass_at_1.png").stat().st_size > 10_000 and (folder / "comparison.md").read_text().startswith(
        "| checkpoint"
    )
    lineage = LineageStore(evaluated["home"] / "lineage.duckdb")
    parents = {l.parent_id for l in lineage.upstream(comparison["artifact_id"])}
    assert set(ids_of(summary, "evaluate base (no_thinking)")) <= parents and ids_of(summary, "eval set")[0] in parents


def test_cli_compares_named_checkpoints_reusing_cached_evaluations(evaluated):
    from flows.cli import app

    evaluated["patch"].setenv("THINKFLOW_HOME", str(evaluated["home"]))
    base = ids_of(evaluated["summary"], "base model")[0]
    config = str(PROJECT_ROOT / "configs" / "tiny.yaml")
    sets = [arg for setting in SETTINGS for arg in ("--set", setting)]
    result = CliRunner().invoke(
        app,
        [
            "run",
            "evaluate",
            "--config",
            config,
            *sets,
            "--set",
            f"checkpoints=[{base}]",
            "--set",
            "evaluate.evaluate_base_model=false",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    evaluation = next(s for s in summary["stages"] if s["label"].startswith("evaluate base:tiny"))
    assert evaluation["cached"] and evaluation["artifact_ids"] == ids_of(evaluated["summary"], "evaluate base")
    table = CliRunner().invoke(app, ["run", "evaluate", "--config", config, *sets])  # all cached: prints both tables
    comparison = evaluated["summary"]["comparison"]["artifact_id"]
    assert table.exit_code == 0 and f"plots: {evaluated['home']}/artifacts/{comparison}/*.png" in table.output
    assert "plain_prompt" in table.output and "no_thinking" in table.output
    missing = CliRunner().invoke(app, ["run", "evaluate", "--config", config, "--set", "checkpoints=[checkpoint-0000]"])
    assert missing.exit_code == 2 and "checkpoint-0000 is not in the artifact store" in missing.output


def test_a_changed_subset_is_a_new_eval_set_and_a_new_evaluation(evaluated):
    from flows.evaluate import evaluate

    evaluated["patch"].setenv("THINKFLOW_HOME", str(evaluated["home"]))
    settings = [s.replace("{name: humaneval, limit: 2}", "{name: humaneval, limit: 1}") for s in SETTINGS]
    summary = evaluate(
        config=str(PROJECT_ROOT / "configs" / "tiny.yaml"),
        overrides=settings + ["evaluate.baselines=[]", "evaluate.process=flow"],
    )
    stages = {s["label"]: s for s in summary["stages"]}
    assert (
        stages["benchmark problems"]["cached"]
        and not stages["eval set"]["cached"]
        and not stages["evaluate base"]["cached"]
    )
    assert stages["eval set"]["artifact_ids"] != ids_of(evaluated["summary"], "eval set")


def test_a_fresh_process_decodes_what_the_flows_process_decodes_under_the_same_cache_key(evaluated):
    import pyarrow.parquet as pq

    from flows.evaluate import evaluate
    from flows.stage_sequences import pipeline_recipe
    from storage import ArtifactStore
    from tasks.evaluation.evaluate import evaluate_checkpoint
    from tasks.records import read_jsonl

    evaluated["patch"].setenv("THINKFLOW_HOME", str(evaluated["home"]))
    config, store = str(PROJECT_ROOT / "configs" / "tiny.yaml"), ArtifactStore(evaluated["home"])
    in_flow = SETTINGS + ["evaluate.process=flow"]
    summary = evaluate(config=config, overrides=in_flow)
    assert all(s["cached"] for s in summary["stages"])  # where it decodes is not part of what it decodes
    recipe = pipeline_recipe(config, in_flow)
    cfg, eval_set = recipe.evaluate, store.path(ids_of(summary, "eval set")[0])
    rows, *_ = evaluate_checkpoint(
        store.path(ids_of(summary, "base model")[0]),
        read_jsonl(eval_set / "problems.jsonl"),
        cfg.variant("thinking", recipe.prompts.system),
        cfg.generation(),
        cfg.scoring(),
        recipe.sandbox.sandbox_config(),
        recipe.model.torch_dtype,
    )
    fresh = pq.read_table(store.path(ids_of(summary, "evaluate base")[0]) / "samples.parquet").to_pylist()
    assert [(r["problem_id"], r["response"], r["status"]) for r in rows] == [
        (r["problem_id"], r["response"], r["status"]) for r in fresh
    ]
