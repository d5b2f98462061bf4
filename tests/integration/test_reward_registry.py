"""A reward term added through the registry alone (a module of its own, named in the recipe): the
recipe validates its weight, GRPO trains on it in the worker process, ``verify --reward`` shows it,
the RL plots draw it and the run summary shows its last value. No project file changes."""

import json
import sys

import pytest
from conftest import PROJECT_ROOT
from training_fixtures import commit_folder, commit_model
from typer.testing import CliRunner

MODULE = "thinkflow_registry_test_terms"
TERM_MODULE_SOURCE = '''
from tasks.training.reward_terms import RewardTerm, completion_text, register_term


def short_reply(completions, **_):
    """1 for a reply of at most 60 characters."""
    return [1.0 if len(completion_text(c)) <= 60 else 0.0 for c in completions]


register_term(RewardTerm("short_reply", short_reply, 0.0, "reply of at most 60 characters", summarised=True))
'''


@pytest.fixture
def term_module(tmp_path, monkeypatch):
    """The term's module on the path of this process and of the processes it starts; unregistered after."""
    from tasks.training.reward_terms import TERMS

    folder = tmp_path / "terms"
    folder.mkdir()
    (folder / f"{MODULE}.py").write_text(TERM_MODULE_SOURCE)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", f"{folder}:{PROJECT_ROOT}")
    yield folder
    TERMS.pop("short_reply", None)
    sys.modules.pop(MODULE, None)


def test_a_term_from_its_own_module_is_validated_trained_on_verified_plotted_and_summarised(
    prefect_harness, tiny_model_dir, tmp_path, home, term_module
):
    from flows.cli import app
    from flows.runtime.stage_log import key_metrics
    from storage import ArtifactStore, LineageStore
    from tasks.recipe import RecipeError, load_recipe
    from tasks.training.rl import train_grpo

    tiny = PROJECT_ROOT / "configs" / "tiny.yaml"
    with pytest.raises(RecipeError, match="unknown reward terms \\['short_reply'\\]"):
        load_recipe(tiny, ["rl.reward.weights.short_reply=0.5"])  # not registered: its module is not named
    recipe = load_recipe(tiny, [f"rl.reward.modules=[{MODULE}]", "rl.reward.weights.short_reply=0.5"])
    assert recipe.rl.reward.weights == {"correct": 0.9, "upfront_think": 0.02, "inline_think": 0.08, "short_reply": 0.5}

    problems = [
        {
            "id": f"p/{i}",
            "source": "hand",
            "prompt": f"Return {i}.",
            "starter_code": "",
            "reference": f"def f():\n    return {i}\n",
            "meta": {},
            "tests": {"kind": "call", "fn_name": "f", "inputs": [[]], "outputs": [i]},
        }
        for i in range(4)
    ]
    folder = tmp_path / "problems"
    folder.mkdir()
    (folder / "problems.jsonl").write_text("".join(json.dumps(p) + "\n" for p in problems))
    rl = recipe.rl  # the tiny recipe's GRPO: 2 steps of 2 prompts x 2 rollouts
    checkpoint = train_grpo(
        commit_model(tiny_model_dir, tmp_path),
        commit_folder(folder, "dataset", "hand-problems"),
        rl,
        recipe.sandbox,
        "Write Python.",
    )
    lineage = LineageStore(home / "lineage.duckdb")
    trained = lineage.metric_series(checkpoint, "reward_short_reply")
    assert [step for step, _ in trained] == [1, 2]  # computed in the worker, logged per step
    metrics = lineage.metrics_of(checkpoint)
    assert metrics["reward_short_reply_last"] == trained[-1][1]
    assert "reward_short_reply_last=" in key_metrics(metrics)  # summarised
    made_with = lineage.run(lineage.artifact(checkpoint)["created_by_run"])["outputs"]
    curves = next(output["artifact_id"] for output in made_with if output["role"] == "curves")
    drawn = json.loads((ArtifactStore().path(curves) / "curves.json").read_text())
    assert "reward_short_reply" in drawn["reward.png"]  # plotted

    verify_problems = tmp_path / "verify-problems.jsonl"  # the problems folder itself went into the store
    verify_problems.write_text("".join(json.dumps(p) + "\n" for p in problems))
    recipe_file = tmp_path / "recipe.yaml"
    recipe_file.write_text(
        f"rl:\n  reward:\n    modules: [{MODULE}]\n    weights: {{correct: 0.5, short_reply: 0.5}}\n"
    )
    solutions = tmp_path / "solutions.jsonl"
    solutions.write_text(
        json.dumps({"problem_id": "p/1", "solution_id": "short", "text": "```python\ndef f():\n    return 1\n```"})
        + "\n"
        + json.dumps(
            {"problem_id": "p/1", "solution_id": "long", "text": "```python\ndef f():\n    return 2\n```\n" + "x" * 80}
        )
        + "\n"
    )
    verdicts = tmp_path / "verdicts.jsonl"
    shown = CliRunner().invoke(
        app,
        [
            "verify",
            str(verify_problems),
            str(solutions),
            "-o",
            str(verdicts),
            "--workers",
            "2",
            "--reward",
            "think_anywhere",
            "--config",
            str(recipe_file),
        ],
    )
    assert shown.exit_code == 0, shown.output
    assert "short_reply" in shown.output
    rows = {row["solution_id"]: row for row in map(json.loads, verdicts.read_text().splitlines())}
    assert rows["short"]["reward_terms"]["short_reply"] == 1.0 and rows["long"]["reward_terms"]["short_reply"] == 0.0
    assert rows["short"]["reward"] == pytest.approx(0.5 + 0.5 + 0.02 * 0 + 0.08 * 0)
    assert rows["long"]["reward"] == pytest.approx(0.0)
