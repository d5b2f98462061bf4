"""The thinking-midtraining corpus: chunking, verification, the halves, the flow on the tiny config,
and a run killed part-way through annotation that redoes only the unfinished shards."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from transformers import AutoTokenizer

from tasks.annotator_server import AnnotatorServer, Faults
from tasks.midtraining import (
    chunk_text,
    corpus_documents,
    in_rl_half,
    rl_examples,
    segment_at_line_ends,
    segments_of_interleaved,
    verify_sample,
)
from tasks.thinking import strip_thoughts

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_chunks_are_bounded_and_lossless(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    (name, text), *_ = corpus_documents("python-stdlib", max_documents=1, seed=3)
    text += "x" * 3000 + "\n"  # one line far longer than a chunk: cut by tokens
    chunks = chunk_text(text, tokenizer, max_tokens=48)
    assert "".join(chunks) == text and len(chunks) > 3
    assert max(len(tokenizer(c, add_special_tokens=False)["input_ids"]) for c in chunks) <= 48


def test_segments_cut_at_line_ends_and_concatenate_back():
    chunk = "a\nb\nc\nd\ne\n"
    assert segment_at_line_ends(chunk, 3) == ["a\nb\n", "c\n", "d\ne\n"]
    assert segment_at_line_ends("one line\n", 3) == ["one line\n"]


def test_verification_rejects_changed_text_and_empty_thoughts():
    chunk = "first line\nsecond line\n"
    sample, reason = verify_sample(chunk, ["first line\n", "second line\n"], ["what comes <think>next"])
    assert reason is None and sample["text"] == "first line\n<think>what comes next</think>second line\n"
    assert strip_thoughts(sample["text"]) == chunk
    assert verify_sample(chunk, ["first line\n", "second  line\n"], ["t"]) == (None, "concat_mismatch")
    assert verify_sample(chunk, ["first line\n", "second line\n"], ["  "]) == (None, "empty_thought")
    assert verify_sample(chunk, [chunk], []) == (None, "no_thought")


def test_interleaved_annotator_output_is_split_and_verified():
    segments, thoughts = segments_of_interleaved("x1 <think>t1</think> x2<think>t2</think>x3 <think>open")
    assert segments == ["x1 ", " x2", "x3 <think>open"] and thoughts == ["t1", "t2"]
    assert verify_sample("x1  x2x3 ", segments, thoughts) == (None, "concat_mismatch")  # the model changed the text


def test_rl_examples_hold_every_prefix_thought_suffix_split():
    sample = {"segments": ["a", "b", "c"], "thoughts": ["t1", "t2"]}
    assert rl_examples("doc#0", sample) == [
        {"chunk_id": "doc#0", "boundary": 0, "prefix": "a", "thought": "t1", "suffix": "b"},
        {"chunk_id": "doc#0", "boundary": 1, "prefix": "ab", "thought": "t2", "suffix": "c"},
    ]
    halves = [in_rl_half(f"doc#{i}", 0.5, 0) for i in range(200)]
    assert 70 < sum(halves) < 130 and halves == [in_rl_half(f"doc#{i}", 0.5, 0) for i in range(200)]


def run_flow(home, prefect_home, overrides, wait=True):
    env = {**os.environ, "THINKFLOW_HOME": str(home), "PREFECT_HOME": str(prefect_home)}
    command = [sys.executable, "-m", "flows.cli", "run", "thinking-midtraining", "--config", "configs/tiny.yaml", "--json"]
    for assignment in overrides:
        command += ["--set", assignment]
    process = subprocess.Popen(command, cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True, text=True)
    if not wait:
        return process
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def shard_runs(home):
    from storage import LineageStore

    runs = LineageStore(home / "lineage.duckdb").runs_of_stage("annotate_corpus_shard")
    return [(r["params"]["shard"], r["status"]) for r in runs]


@pytest.mark.integration
@pytest.mark.slow  # ~80 s on 2 cores (two flow subprocesses); resume after SIGKILL of training runs by default (test_training)
def test_killed_annotation_redoes_only_unfinished_shards(tiny_model_dir, tmp_path):
    from storage import ArtifactStore, LineageStore

    home, prefect_home = tmp_path / "home", tmp_path / "prefect"
    settings = ["annotator.kind=openai", "annotator.model=tiny", "annotator.cache=false", "corpus.parallel_shards=1"]
    with AnnotatorServer(tiny_model_dir, "tiny", faults=Faults(stall_after=8)) as server:
        process = run_flow(home, prefect_home, settings + [f"annotator.base_url={server.url}"], wait=False)
        deadline = time.monotonic() + 240
        while server.stats.as_dict()["stalled"] == 0:  # shard 0 (at most 8 requests) is done; shard 1 hangs
            assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()[-3000:]
            time.sleep(0.2)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        first_requests = server.stats.as_dict()["received"]
    finished_before = [shard for shard, status in shard_runs(home) if status == "completed"]
    assert finished_before == [0]

    with AnnotatorServer(tiny_model_dir, "tiny") as server:
        summary = run_flow(home, prefect_home, settings + [f"annotator.base_url={server.url}"])
        second_requests = server.stats.as_dict()["received"]
    rerun = [shard for shard, _ in shard_runs(home)][len(finished_before):]
    assert rerun == [1, 2]  # shard 0 came from Prefect's cache, untouched
    annotate = [s for s in summary["stages"] if s["stage"].startswith("annotate")][0]
    assert annotate["stage"] == "annotate (3 shards)" and not annotate["cached"]
    lineage = LineageStore(home / "lineage.duckdb")
    requests = [lineage.metrics_of(a)["requests"] for a in annotate["artifact_ids"]]
    assert second_requests == requests[1] + requests[2]  # the annotator was asked only for the unfinished shards
    assert first_requests > requests[0]  # the killed run had got into shard 1
    corpus = [s for s in summary["stages"] if s["stage"] == "corpus"][0]
    metrics = corpus["metrics"][corpus["artifact_ids"][0]]
    assert metrics["chunks"] == 12 and metrics["accepted"] + sum(v for k, v in metrics.items() if k.startswith("rejected_")) == 12
    sft_rows = (ArtifactStore(home).path(corpus["artifact_ids"][0]) / "train.jsonl").read_text().splitlines()
    for row in map(json.loads, sft_rows):
        assert strip_thoughts(row["text"]) == row["chunk"] and "<think>" in row["text"]


@pytest.mark.integration
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
