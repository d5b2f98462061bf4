"""The thinking-midtraining flow end to end on the tiny config, with every RLVR arm (the paper's
baselines: from the base model, from SFT on the raw chunks, from SFT on the thought-augmented
chunks, and from that SFT + RL mid-training)."""

import json

ARMS = ["base", "sft_raw", "sft_think", "sft_think_rlmt"]
ALL_ARMS = [f"midtraining.arms=[{','.join(ARMS)}]"]
# one RLVR set for all arms, calibrated on their starts (band [0, 1]: the tiny model solves nothing, every candidate is kept);
# RL mid-training's fixed probe prefixes at every step
CALIBRATED = [
    "calibration.enabled=true",
    "calibration.samples=2",
    "calibration.low=0",
    "calibration.high=1",
    "calibration.limit=4",
]
PROBED = ["midtraining.rl.probe.prompts=2", "midtraining.rl.probe.samples=2", "midtraining.rl.probe.every=1"]
SWEPT = ["midtraining.rlmt_sweep=[1]"]  # one more RLVR arm: from 1 step of RL mid-training (the main arm has 2)
RLVR_ARMS = ARMS + ["sft_think_rlmt_1"]


def test_thinking_midtraining_runs_end_to_end_on_the_tiny_config(prefect_harness, home, tiny_model_dir):
    from flows.thinking_midtraining import thinking_midtraining
    from storage import ArtifactStore, LineageStore
    from tasks.annotator_server import AnnotatorServer
    from tasks.thinking import THINK_OPEN

    with AnnotatorServer(tiny_model_dir, "tiny") as server:  # the LLM judge behind a real HTTP server
        judge = [
            f"midtraining.agreement_judge.{key}={value}"
            for key, value in (("kind", "openai"), ("model", "tiny"), ("base_url", server.url), ("cache", "false"))
        ]
        first = thinking_midtraining(
            config="configs/tiny.yaml", overrides=ALL_ARMS + CALIBRATED + PROBED + SWEPT + judge
        )
        served = server.stats.as_dict()["served"]
        second = thinking_midtraining(
            config="configs/tiny.yaml", overrides=ALL_ARMS + CALIBRATED + PROBED + SWEPT + judge
        )
    stages = {s["label"]: s for s in first["stages"]}
    assert list(stages) == [
        "base model",
        "chunks",
        "annotate (3 shards)",
        "corpus",
        "mid-training sft",
        "mid-training rl",
        "mid-training rl (1 steps)",
        "raw corpus",
        "mid-training sft (raw)",
        *[f"mid-training eval {arm}" for arm in ARMS],
        "problems",
        "filter",
        "split",
        "calibrate rlvr",
        *[f"rlvr (code) from {arm}" for arm in RLVR_ARMS],
        "eval set",
        *[f"evaluate {arm}" for arm in RLVR_ARMS],
        *[f"evaluate rlvr from {arm}" for arm in RLVR_ARMS],
        "compare",
        "judge agreement",
        "mid-training comparison",
    ]
    sft_id, rl_id, held_out_id = stages["corpus"]["artifact_ids"]
    metrics = stages["corpus"]["metrics"][sft_id]
    assert metrics["chunks"] == 12 and 0 < metrics["acceptance_rate"] <= 1 and metrics["thoughts_per_sample"] >= 1
    store = ArtifactStore(home)
    sft = [json.loads(line) for line in (store.path(sft_id) / "train.jsonl").read_text().splitlines()]
    rl = [json.loads(line) for line in (store.path(rl_id) / "train.jsonl").read_text().splitlines()]
    assert metrics["sft_samples"] == len(sft) > 0 and metrics["rl_examples"] == len(rl) > 0
    assert {r["chunk_id"] for r in rl}.isdisjoint(s["chunk_id"] for s in sft)
    held = [json.loads(line) for line in (store.path(held_out_id) / "train.jsonl").read_text().splitlines()]
    assert held and metrics["held_out_examples"] == len(held)
    assert {h["chunk_id"] for h in held}.isdisjoint(
        {r["chunk_id"] for r in rl} | {s["chunk_id"] for s in sft}
    )  # never trained on
    chunks = {
        json.loads(line)["id"]: json.loads(line)["text"]
        for line in (store.path(stages["chunks"]["artifact_ids"][0]) / "chunks.jsonl").read_text().splitlines()
    }
    for row in rl:
        assert chunks[row["chunk_id"]].startswith(row["prefix"] + row["suffix"]) and row["thought"]
    ids = {name: stage["artifact_ids"][0] for name, stage in stages.items()}
    lineage = LineageStore(home / "lineage.duckdb")
    links = {(l.artifact_id, l.stage, l.parent_id) for l in lineage.upstream(ids["compare"])}
    for link in [
        (ids["compare"], "compare_evaluations", ids["evaluate rlvr from sft_think_rlmt"]),
        (ids["evaluate rlvr from sft_think_rlmt"], "evaluate", ids["rlvr (code) from sft_think_rlmt"]),
        (ids["mid-training rl"], "midtraining_rl", ids["mid-training sft"]),
        (ids["mid-training rl"], "midtraining_rl", rl_id),
        (ids["mid-training sft"], "sft", sft_id),
        (sft_id, "assemble_corpus", ids["chunks"]),
    ]:
        assert link in links, link
    # each RLVR checkpoint comes from its own starting point, and the arms share the problems
    starts = {
        "base": ids["base model"],
        "sft_raw": ids["mid-training sft (raw)"],
        "sft_think": ids["mid-training sft"],
        "sft_think_rlmt": ids["mid-training rl"],
        "sft_think_rlmt_1": ids["mid-training rl (1 steps)"],
    }
    # the swept run: 1 step of the same RL from the same SFT model. (The tiny model gets no reward, so no update is made
    # and both runs write the same weights: one content-addressed checkpoint, produced by two runs.)
    assert sorted(r["params"]["rl"]["max_steps"] for r in lineage.runs_of_stage("midtraining_rl")) == [1, 2]
    assert (starts["sft_think_rlmt_1"], "midtraining_rl", ids["mid-training sft"]) in {
        (l.artifact_id, l.stage, l.parent_id) for l in lineage.upstream(starts["sft_think_rlmt_1"])
    }
    rl_set = ids["calibrate rlvr"]
    for arm, start in starts.items():
        parents = {
            (l.stage, l.parent_id)
            for l in lineage.upstream(ids[f"rlvr (code) from {arm}"])
            if l.artifact_id == ids[f"rlvr (code) from {arm}"]
        }
        assert ("grpo", start) in parents and ("grpo", rl_set) in parents, (arm, parents)
        assert not any(p in starts.values() for _, p in parents - {("grpo", start), ("grpo", rl_set)}), (arm, parents)
    # the RL set: every arm's start sampled every candidate; the pooled pass rate chose it
    calibrated = {(l.stage, l.parent_id) for l in lineage.upstream(rl_set) if l.artifact_id == rl_set}
    assert calibrated == {("calibrate_arms", p) for p in [*starts.values(), stages["split"]["artifact_ids"][0]]}, (
        calibrated
    )
    rows = [json.loads(line) for line in (store.path(rl_set) / "calibration.jsonl").read_text().splitlines()]
    assert sorted(r["policy"] for r in rows) == sorted(RLVR_ARMS * 4) and all(r["samples"] == 2 for r in rows)
    assert all(f"Calibration of arm {arm}" in (store.path(rl_set) / "calibration.md").read_text() for arm in ARMS)
    # each arm's start evaluated on the problems its RLVR checkpoint is evaluated on
    for arm in RLVR_ARMS[1:]:
        assert (ids[f"evaluate {arm}"], "evaluate", starts[arm]) in {
            (l.artifact_id, l.stage, l.parent_id) for l in lineage.upstream(ids["compare"])
        }
    # the raw arm trained on the same chunks as the thinking arm, without the thoughts
    raw_id = ids["raw corpus"]
    raw = [json.loads(line) for line in (store.path(raw_id) / "train.jsonl").read_text().splitlines()]
    assert [r["text"] for r in raw] == [s["chunk"] for s in sft] and not any(THINK_OPEN in r["text"] for r in raw)
    assert all(THINK_OPEN in s["text"] for s in sft)
    assert (ids["mid-training sft (raw)"], "sft", raw_id) in {
        (l.artifact_id, l.stage, l.parent_id) for l in lineage.upstream(ids["compare"])
    }
    rl_metrics = lineage.metrics_of(ids["mid-training rl"])
    assert rl_metrics["steps"] == 2 and [
        s for s, _ in lineage.metric_series(ids["mid-training rl"], "reward_judge")
    ] == [1, 2]
    # the held-out evaluation: every model, with and without thinking, perplexity, intervals; the figures
    for arm in ARMS:
        report = lineage.metrics_of(ids[f"mid-training eval {arm}"])
        assert report["examples"] == len(held)
        for name in ("judge_reward_thinking", "judge_reward_no_thinking", "judge_reward_plain", "suffix_perplexity"):
            assert report[f"{name}_ci_low"] <= report[name] <= report[f"{name}_ci_high"], (arm, name, report)
        assert report["suffix_perplexity"] > 1
    comparison = store.path(ids["mid-training comparison"])
    table = (comparison / "comparison.md").read_text()
    assert all(f"| {arm} |" in table for arm in ARMS) and "suffix perplexity" in table and "plain continuation" in table
    paired = json.loads((comparison / "comparison.json").read_text())["paired"]["rows"]
    assert [(row[0], row[1], row[2]) for row in paired] == [
        (later, earlier, str(len(held))) for i, later in enumerate(ARMS) for earlier in ARMS[:i]
    ]  # every later model vs every earlier one
    assert (comparison / "rlmt.png").stat().st_size > 0 and (comparison / "post_training.png").stat().st_size > 0
    assert [s for s, _ in lineage.metric_series(ids["mid-training rl"], "reward_thought_words")] == [1, 2]
    # the probe: the same 2 prefixes x 2 samples at steps 0, 1 and 2, judged, with their thought length; the trend in the report
    assert [s for s, _ in lineage.metric_series(ids["mid-training rl"], "probe_thought_words")] == [0, 1, 2]
    assert rl_metrics["probe_reward_points"] == 3 and rl_metrics["probe_reward_prompts"] == 2
    assert "fixed probe set (2 prefixes, 3 probe points)" in table
    assert (
        "pass@1 before RLVR" in table
        and "groups with reward variance" in table
        and "Calibration of arm sft_raw" in table
    )
    assert (
        "| rlvr from sft_think_rlmt | sft_think_rlmt | thinking |" in table
        and "| rlvr from sft_raw | rlvr from base |" in table
    )
    assert "Calibration of the arms pooled (the RL set's rule): 10 samples per problem" in table
    signal = json.loads((comparison / "comparison.json").read_text())["rlvr_signal"]["rows"]
    assert [row[0] for row in signal] == RLVR_ARMS and all(row[1] == "2" for row in signal)  # 2 RLVR steps each
    agreement = lineage.metrics_of(ids["judge agreement"])
    assert agreement["pairs"] == 2 * len(ARMS) * len(held) and agreement["truth_controls"] == len(held)
    assert (
        served == agreement["pairs"] + agreement["truth_controls"] + agreement["mismatch_controls"]
    )  # each asked once
    assert agreement["agreement_ci_low"] <= agreement["agreement"] <= agreement["agreement_ci_high"]
    assert "pass@1 after RLVR from it" in table and "Judge agreement" in table and "control pairs" in table
    assert (
        agreement["both_yes"] + agreement["both_no"] + agreement["only_first"] + agreement["only_second"]
        == agreement["pairs"]
    )
    assert second["all_cached"] and [s["artifact_ids"] for s in second["stages"]] == [
        s["artifact_ids"] for s in first["stages"]
    ]
    # the flow's result in the Prefect UI: the comparison's tables and both figures inline, under the flow's own key
    from prefect.artifacts import Artifact

    shown = Artifact.get("thinking-midtraining-mid-training-comparison")
    assert shown is not None and ids["mid-training comparison"] in shown.data and "| sft_think_rlmt |" in shown.data
    assert (
        "![rlmt.png](data:image/png;base64," in shown.data
        and "![post_training.png](data:image/png;base64," in shown.data
    )
