"""Scheduled retraining on the tiny recipe: a first run trains and records the best checkpoint; a
second run with nothing new trains nothing and says so; new rows in a problem file are noticed
(the load re-runs though the recipe is unchanged), the pipeline re-trains, and the new checkpoint
is compared with the previous best on the same eval set in a recorded decision."""

import json

import yaml
from conftest import PROJECT_ROOT


def write_problems(path, problems):
    path.write_text("".join(json.dumps({**p, "id": f"extra/{p['id']}", "source": "jsonl"}) + "\n" for p in problems))


def test_retrain_notices_new_data_and_says_when_there_is_none(prefect_harness, home, tmp_path):
    from flows.retrain import retrain
    from storage import ArtifactStore, LineageStore
    from tasks.problems.bundled import load_humaneval

    humaneval = load_humaneval().problems
    extra = tmp_path / "extra.jsonl"
    write_problems(extra, humaneval[40:44])
    recipe = yaml.safe_load((PROJECT_ROOT / "configs" / "tiny.yaml").read_text())
    recipe["problems"]["sources"].append({"name": f"jsonl:{extra}"})
    config = tmp_path / "recipe.yaml"
    config.write_text(yaml.safe_dump(recipe))
    lineage = LineageStore(home / "lineage.duckdb")

    first = retrain(config=str(config))
    assert first["retrain"]["decision"] and "sft" in first["retrain"]["new_checkpoints_from"]
    first_best = first["retrain"]["best_checkpoint"]
    assert first_best["checkpoint"] == first["retrain"]["new_checkpoint"]
    trainings = len(lineage.runs_of_stage("sft")) + len(lineage.runs_of_stage("grpo"))

    second = retrain(config=str(config))
    assert "all 15 stages of think-anywhere came from the cache; no training ran" in second["retrain"]["message"]
    assert second["retrain"]["decision"] is None and second["retrain"]["new_checkpoints_from"] == []
    assert "is already the best checkpoint on record" in second["retrain"]["message"]
    assert len(lineage.runs_of_stage("sft")) + len(lineage.runs_of_stage("grpo")) == trainings

    write_problems(extra, humaneval[40:47])  # new rows in the same file; the recipe is untouched
    third = retrain(config=str(config))
    ran = {s["label"] for s in third["stages"] if not s["cached"]}
    assert {"problems", "sft", "rl", "evaluate previous best", "retrain decision"} <= ran and "base model" not in ran
    decision = json.loads((ArtifactStore().path(third["retrain"]["decision"]) / "decision.json").read_text())
    assert decision["previous_best"]["checkpoint"] == first_best["checkpoint"]
    assert decision["new"]["checkpoint"] == third["retrain"]["new_checkpoint"] != first_best["checkpoint"]
    assert third["retrain"]["best_checkpoint"] == decision["best"]
    parents = {link.parent_id for link in lineage.upstream(third["retrain"]["decision"], max_depth=1)}
    assert parents == {
        decision["new"]["checkpoint"],
        decision["new"]["report"],
        first_best["checkpoint"],
        decision["previous_best"]["report"],
    }
    loads = lineage.runs_of_stage("load_problems")
    assert loads[-1]["params"]["source_data"][f"jsonl:{extra}"] != loads[0]["params"]["source_data"][f"jsonl:{extra}"]
