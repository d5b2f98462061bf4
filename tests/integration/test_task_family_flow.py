"""The think-anywhere flow on configs/tiny-family.yaml, for real: the generated task family, cold-start
targets with the generator's hints, calibration, the probe set, the upfront-only arm, paired deltas
in lineage and the precision the hardware chose."""

import json

import pytest
from conftest import PROJECT_ROOT


@pytest.fixture(scope="module")
def family_run(prefect_harness, tmp_path_factory):
    from flows.think_anywhere import think_anywhere

    home = tmp_path_factory.mktemp("family-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("THINKFLOW_HOME", str(home))
        summary = think_anywhere(config=str(PROJECT_ROOT / "configs" / "tiny-family.yaml"))
        yield {"home": home, "summary": summary}


def stage(run, name):
    return next(s for s in run["summary"]["stages"] if s["label"] == name)


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_flow_runs_calibration_and_both_rl_arms(family_run):
    names = [s["label"] for s in family_run["summary"]["stages"]]
    assert names[names.index("sft") + 1 : names.index("sft") + 4] == ["calibrate", "rl", "rl (upfront-only arm)"]
    assert [row[0] for row in family_run["summary"]["comparison"]["rows"]] == ["base", "sft", "rl", "rl-upfront-only"]


def test_calibration_measures_every_candidate_and_rl_trains_on_its_set(family_run):
    from storage import ArtifactStore, LineageStore

    store, lineage = ArtifactStore(family_run["home"]), LineageStore(family_run["home"] / "lineage.duckdb")
    calibrated = stage(family_run, "calibrate")["artifact_ids"][0]
    rows = read_jsonl(store.path(calibrated) / "calibration.jsonl")
    assert len(rows) == 8 and all(r["samples"] == 2 and r["pass_rate"] == r["passed"] / 2 for r in rows)
    kept = read_jsonl(store.path(calibrated) / "problems.jsonl")
    assert [p["id"] for p in kept] == [r["problem_id"] for r in rows]  # band [0, 1]: all of them
    table = (store.path(calibrated) / "calibration.md").read_text()
    assert "| all | 8 |" in table and "temperature 0.6" in table
    assert lineage.metrics_of(calibrated)["kept"] == 8
    rl = stage(family_run, "rl")["artifact_ids"][0]
    assert calibrated in {link.parent_id for link in lineage.upstream(rl)}


def test_cold_start_targets_carry_the_generators_plan_and_hints(family_run):
    from storage import ArtifactStore

    store = ArtifactStore(family_run["home"])
    coldstart = stage(family_run, "cold-start set")["artifact_ids"][0]
    records = read_jsonl(store.path(coldstart) / "train.jsonl")
    problems = {
        p["id"]: p
        for p in read_jsonl(
            store.path(stage(family_run, "train split with solutions")["artifact_ids"][0]) / "problems.jsonl"
        )
    }
    assert records
    for record in records:
        meta = problems[record["problem_id"]]["meta"]
        assert record["plan"].startswith("Steps: ") and set(record["thoughts"]) <= set(meta["hints"])
        assert record["target_origin"] == ("policy" if meta.get("policy_solution") else "reference")


def test_the_probe_set_is_scored_at_every_probe_step(family_run):
    from storage import LineageStore

    lineage = LineageStore(family_run["home"] / "lineage.duckdb")
    rl = stage(family_run, "rl")["artifact_ids"][0]
    # (the tiny model earns no reward, so both arms leave the weights as they were: one checkpoint, two runs' series)
    assert sorted({step for step, _ in lineage.metric_series(rl, "probe_reward")}) == [0, 1, 2]
    assert sorted({step for step, _ in lineage.metric_series(rl, "probe_correct")}) == [0, 1, 2]
    assert sorted({step for step, _ in lineage.metric_series(rl, "reward_correct_varies")}) == [1, 2]
    metrics = lineage.metrics_of(rl)  # 3 probe points: step 0 against step 2, with both intervals
    assert metrics["probe_reward_points"] == 3 and metrics["probe_reward_prompts"] == 2
    assert metrics["probe_reward_gain_ci_low"] <= metrics["probe_reward_gain"] <= metrics["probe_reward_gain_ci_high"]
    assert (
        metrics["probe_reward_gain_ci_low_prompts"]
        <= metrics["probe_reward_gain"]
        <= metrics["probe_reward_gain_ci_high_prompts"]
    )
    from storage import ArtifactStore

    curves = lineage.latest_artifact("grpo-curves", "report")
    probe = read_jsonl(ArtifactStore(family_run["home"]).path(curves["artifact_id"]) / "probe.jsonl")
    assert len(probe) == 3 * 2 * 2 and {r["step"] for r in probe} == {0, 1, 2}  # steps x prompts x samples
    assert all(
        r["reward"] == pytest.approx(0.9 * r["correct"] + 0.02 * r["upfront_think"] + 0.08 * r["inline_think"])
        for r in probe
    )
    assert all(isinstance(r["completion"], str) for r in probe)  # what the policy wrote, to read beside its score


def test_the_arms_differ_only_in_the_format_weights_and_precision_is_recorded(family_run):
    from storage import LineageStore
    from tasks.precision import resolve_dtype

    lineage = LineageStore(family_run["home"] / "lineage.duckdb")
    runs = lineage.runs_of_stage("grpo")[-2:]
    weights = sorted((r["params"]["rl"]["reward"]["weights"] for r in runs), key=lambda w: w["inline_think"])
    assert weights[0] == {"correct": 0.9, "upfront_think": pytest.approx(0.1), "inline_think": 0.0}
    assert weights[1] == {"correct": 0.9, "upfront_think": 0.02, "inline_think": 0.08}
    expected = resolve_dtype("auto")[0]
    assert {r["params"]["rl"]["bf16"] for r in runs} == {expected == "bfloat16"}
    assert {r["params"]["dtype"] for r in lineage.runs_of_stage("calibrate")} == {expected}


def test_compare_records_paired_deltas_for_every_pair(family_run):
    from storage import LineageStore

    lineage = LineageStore(family_run["home"] / "lineage.duckdb")
    metrics = lineage.metrics_of(stage(family_run, "compare")["artifact_ids"][0])
    for name in ("rl", "sft", "rl-vs-sft", "rl-upfront-only-vs-rl"):
        for bench, problems in (("functions", 10), ("humaneval", 4), ("all", 14)):
            assert metrics[f"paired/{name}/{bench}/problems"] == problems
            assert (
                metrics[f"paired/{name}/{bench}/low"]
                <= metrics[f"paired/{name}/{bench}/delta"]
                <= metrics[f"paired/{name}/{bench}/high"]
            )
