"""The thinking-midtraining flow end to end on the tiny config."""

import json


def test_thinking_midtraining_runs_end_to_end_on_the_tiny_config(prefect_harness, home):
    from flows.thinking_midtraining import thinking_midtraining
    from storage import ArtifactStore, LineageStore

    first = thinking_midtraining(config="configs/tiny.yaml")
    stages = {s["stage"]: s for s in first["stages"]}
    assert list(stages) == ["base model", "chunks", "annotate (3 shards)", "corpus", "mid-training sft", "mid-training rl",
                            "problems", "filter", "split", "rlvr (code)", "eval set", "evaluate base", "evaluate rlvr", "compare"]
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
    for link in [(ids["compare"], "compare_evaluations", ids["evaluate rlvr"]), (ids["evaluate rlvr"], "evaluate", ids["rlvr (code)"]), (ids["rlvr (code)"], "grpo", ids["mid-training rl"]),
                 (ids["mid-training rl"], "midtrain_grpo", ids["mid-training sft"]), (ids["mid-training rl"], "midtrain_grpo", rl_id),
                 (ids["mid-training sft"], "sft", sft_id), (sft_id, "assemble_corpus", ids["chunks"])]:
        assert link in links, link
    rl_metrics = lineage.metrics_of(ids["mid-training rl"])
    assert rl_metrics["steps"] == 2 and [s for s, _ in lineage.metric_series(ids["mid-training rl"], "reward_judge")] == [1, 2]
    second = thinking_midtraining(config="configs/tiny.yaml")
    assert second["all_cached"] and [s["artifact_ids"] for s in second["stages"]] == [s["artifact_ids"] for s in first["stages"]]
