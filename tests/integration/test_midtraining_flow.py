"""The thinking-midtraining flow end to end on the tiny config, with every RLVR arm (the paper's
baselines: from the base model, from SFT on the raw chunks, from SFT on the thought-augmented
chunks, and from that SFT + RL mid-training)."""

import json

ARMS = ["base", "sft_raw", "sft_think", "sft_think_rlmt"]
ALL_ARMS = [f"midtraining.arms=[{','.join(ARMS)}]"]


def test_thinking_midtraining_runs_end_to_end_on_the_tiny_config(prefect_harness, home):
    from flows.thinking_midtraining import thinking_midtraining
    from storage import ArtifactStore, LineageStore
    from tasks.thinking import THINK_OPEN

    first = thinking_midtraining(config="configs/tiny.yaml", overrides=ALL_ARMS)
    stages = {s["stage"]: s for s in first["stages"]}
    assert list(stages) == ["base model", "chunks", "annotate (3 shards)", "corpus", "mid-training sft", "mid-training rl",
                            "raw corpus", "mid-training sft (raw)", "problems", "filter", "split",
                            *[f"rlvr (code) from {arm}" for arm in ARMS], "eval set", "evaluate base",
                            *[f"evaluate rlvr from {arm}" for arm in ARMS], "compare"]
    sft_id, rl_id = stages["corpus"]["artifact_ids"]
    metrics = stages["corpus"]["metrics"][sft_id]
    assert metrics["chunks"] == 12 and 0 < metrics["acceptance_rate"] <= 1 and metrics["thoughts_per_sample"] >= 1
    store = ArtifactStore(home)
    sft = [json.loads(line) for line in (store.path(sft_id) / "train.jsonl").read_text().splitlines()]
    rl = [json.loads(line) for line in (store.path(rl_id) / "train.jsonl").read_text().splitlines()]
    assert metrics["sft_samples"] == len(sft) > 0 and metrics["rl_examples"] == len(rl) > 0
    assert {r["chunk_id"] for r in rl}.isdisjoint(s["chunk_id"] for s in sft)
    chunks = {json.loads(line)["id"]: json.loads(line)["text"]
              for line in (store.path(stages["chunks"]["artifact_ids"][0]) / "chunks.jsonl").read_text().splitlines()}
    for row in rl:
        assert chunks[row["chunk_id"]].startswith(row["prefix"] + row["suffix"]) and row["thought"]
    ids = {name: stage["artifact_ids"][0] for name, stage in stages.items()}
    lineage = LineageStore(home / "lineage.duckdb")
    links = {(l.artifact_id, l.stage, l.parent_id) for l in lineage.upstream(ids["compare"])}
    for link in [(ids["compare"], "compare_evaluations", ids["evaluate rlvr from sft_think_rlmt"]),
                 (ids["evaluate rlvr from sft_think_rlmt"], "evaluate", ids["rlvr (code) from sft_think_rlmt"]),
                 (ids["mid-training rl"], "midtrain_grpo", ids["mid-training sft"]), (ids["mid-training rl"], "midtrain_grpo", rl_id),
                 (ids["mid-training sft"], "sft", sft_id), (sft_id, "assemble_corpus", ids["chunks"])]:
        assert link in links, link
    # each RLVR checkpoint comes from its own starting point, and the arms share the problems
    starts = {"base": ids["base model"], "sft_raw": ids["mid-training sft (raw)"], "sft_think": ids["mid-training sft"],
              "sft_think_rlmt": ids["mid-training rl"]}
    train_split = stages["split"]["artifact_ids"][0]
    for arm, start in starts.items():
        parents = {(l.stage, l.parent_id) for l in lineage.upstream(ids[f"rlvr (code) from {arm}"]) if l.artifact_id == ids[f"rlvr (code) from {arm}"]}
        assert ("grpo", start) in parents and ("grpo", train_split) in parents, (arm, parents)
        assert not any(p in starts.values() for _, p in parents - {("grpo", start), ("grpo", train_split)}), (arm, parents)
    # the raw arm trained on the same chunks as the thinking arm, without the thoughts
    raw_id = ids["raw corpus"]
    raw = [json.loads(line) for line in (store.path(raw_id) / "train.jsonl").read_text().splitlines()]
    assert [r["text"] for r in raw] == [s["chunk"] for s in sft] and not any(THINK_OPEN in r["text"] for r in raw)
    assert all(THINK_OPEN in s["text"] for s in sft)
    assert (ids["mid-training sft (raw)"], "sft", raw_id) in {(l.artifact_id, l.stage, l.parent_id) for l in lineage.upstream(ids["compare"])}
    rl_metrics = lineage.metrics_of(ids["mid-training rl"])
    assert rl_metrics["steps"] == 2 and [s for s, _ in lineage.metric_series(ids["mid-training rl"], "reward_judge")] == [1, 2]
    second = thinking_midtraining(config="configs/tiny.yaml", overrides=ALL_ARMS)
    assert second["all_cached"] and [s["artifact_ids"] for s in second["stages"]] == [s["artifact_ids"] for s in first["stages"]]
