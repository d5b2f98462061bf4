"""A stage declared once: its inputs and params come from the arguments its cache key is made of,
and its task run's name carries the stage's name and the flow's label."""

import pytest

from tasks.recipe import SandboxSection
from tasks.stage_names import label_of, task_run_name
from tasks.stage_run import Declaration, declared_run


def test_declared_inputs_become_roles_and_every_other_argument_a_param():
    declaration = Declaration(
        "compare", {"model": "model_id", "shard": "shard_ids", "rlvr_": "rlvr_ids", "judge": "judge_id"}
    )
    sandbox = SandboxSection()
    inputs, params = declared_run(
        {
            "model_id": "checkpoint-1",
            "shard_ids": ["dataset-a", "dataset-b"],
            "rlvr_ids": {"base": "checkpoint-2"},
            "judge_id": None,
            "sandbox": sandbox,
            "labels": ["x"],
        },
        declaration,
    )
    assert inputs == {
        "model": "checkpoint-1",
        "shard0": "dataset-a",
        "shard1": "dataset-b",
        "rlvr_base": "checkpoint-2",
    }  # an input argument that is None is no input
    assert params == {"sandbox": sandbox.to_json(), "labels": ["x"]}


def test_a_declared_input_without_its_argument_is_an_error():
    with pytest.raises(TypeError, match="policy_id"):
        declared_run({"model_id": "checkpoint-1"}, Declaration("sft", {"model": "policy_id"}))


@pytest.mark.parametrize(
    "stage, label, name",
    [
        ("grpo", "rl", "grpo: rl"),
        ("sft", "sft", "sft"),
        ("evaluate", "evaluate rl", "evaluate rl"),
        ("build_model", None, "build_model"),
        ("sample_solutions_shard", "solutions 2/3", "sample_solutions_shard: solutions 2/3"),
    ],
)
def test_a_task_run_is_named_by_its_stage_and_label_and_the_label_reads_back(stage, label, name):
    assert task_run_name(stage, label) == name
    assert label_of(name, stage) == (label or stage)


def test_calibration_is_keyed_on_how_rl_draws_and_samples_not_on_how_it_trains():
    from tasks.recipe import RLSection

    base = RLSection()
    assert RLSection(learning_rate=1e-3, max_steps=99).draw() == base.draw()  # training settings: same key
    for changed in ({"temperature": 0.7}, {"max_completion_length": 64}, {"shuffle_seed": 3}, {"sources": ["x"]}):
        assert RLSection(**changed).draw() != base.draw(), changed
