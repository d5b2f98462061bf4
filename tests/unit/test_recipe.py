import pytest
from conftest import PROJECT_ROOT

from tasks.recipe import RecipeError, load_recipe


@pytest.mark.parametrize("name", ["tiny.yaml", "default.yaml"])
def test_shipped_recipes_load(name):
    recipe = load_recipe(PROJECT_ROOT / "configs" / name)
    assert recipe.rl.loss_type == {"tiny.yaml": "dr_grpo", "default.yaml": "dapo"}[name]
    assert recipe.rl.reward.weights == {"correct": 0.9, "upfront_think": 0.02, "inline_think": 0.08}


def test_wrong_key_is_named(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("sft:\n  max_stepz: 3\n")
    with pytest.raises(RecipeError, match="sft.max_stepz: Extra inputs are not permitted"):
        load_recipe(path)


def test_bad_values_are_named(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("rl:\n  num_generations: 4\n  per_device_train_batch_size: 6\n")
    with pytest.raises(RecipeError, match="rl.per_device_train_batch_size.*divisible by num_generations"):
        load_recipe(path)
    path.write_text("rl:\n  reward: {weights: {correct: 1, style: 1}}\n")
    with pytest.raises(RecipeError, match="unknown reward terms \\['style'\\]"):
        load_recipe(path)


def test_overrides_parse_yaml_values():
    recipe = load_recipe(
        PROJECT_ROOT / "configs" / "tiny.yaml", ["rl.max_steps=9", "sft.bf16=true", "evaluate.max_new_tokens=3"]
    )
    assert (recipe.rl.max_steps, recipe.sft.bf16, recipe.evaluate.max_new_tokens) == (9, True, 3)
    with pytest.raises(RecipeError, match="KEY=VALUE"):
        load_recipe(PROJECT_ROOT / "configs" / "tiny.yaml", ["rl.max_steps"])


def test_missing_recipe_is_named(tmp_path):
    with pytest.raises(RecipeError, match="does not exist"):
        load_recipe(tmp_path / "nope.yaml")


@pytest.mark.parametrize("name", ["qwen2.5-coder-7b-think-anywhere", "llama3-8b-thinking-midtraining"])
def test_paper_recipes_load_and_resolve(name):
    from trl import GRPOConfig, SFTConfig

    from tasks.training.launch import accelerate_config
    from tasks.training.worker import trainer_args

    recipe = load_recipe(PROJECT_ROOT / "configs" / f"{name}.yaml")
    for section in (recipe.sft, recipe.rl, recipe.midtraining.sft, recipe.midtraining.rl):
        assert accelerate_config(section.accelerate_config).exists()
    rl = trainer_args(recipe.rl.to_json(), GRPOConfig)
    assert rl["max_steps"] == -1 and rl["num_train_epochs"] >= 1 and rl["use_vllm"] is True
    if name.startswith("qwen"):
        assert (recipe.rl.num_generations, recipe.rl.learning_rate, recipe.rl.temperature) == (8, 1e-6, 1.0)
        assert (recipe.rl.max_prompt_length, recipe.rl.max_completion_length, recipe.rl.num_train_epochs) == (
            1024,
            4096,
            3,
        )
        per_generation = recipe.rl.per_device_train_batch_size * recipe.rl.steps_per_generation * 8  # 8 GPUs
        assert per_generation // recipe.rl.num_generations == 128  # prompts per generation batch, in 16 updates
        assert (recipe.sft.train, recipe.sft.lora.r, recipe.sft.lora.alpha) == ("lora", 16, 32)
        assert (
            trainer_args(recipe.sft.to_json(), SFTConfig)["num_train_epochs"] == 2
        )  # the reference: 2 epochs, lr 1e-5
        assert (recipe.sft.learning_rate, recipe.sft.lr_scheduler_type, recipe.sft.warmup_steps) == (
            1e-5,
            "cosine",
            0.1,
        )
        grpo = trainer_args(recipe.rl.to_json(), GRPOConfig)
        assert (grpo["use_adaptive_entropy"], grpo["entropy_target"], grpo["entropy_coef_max"]) == (True, 0.2, 0.005)
    else:
        assert recipe.midtraining.rl.reward.name == "midtrain_judge" and recipe.midtraining.rl.loss_type == "dr_grpo"
        assert recipe.midtraining.post_training == "math" and recipe.rl.reward.name == "math"


def test_math_post_training_needs_a_source(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("midtraining:\n  post_training: math\n")
    with pytest.raises(RecipeError, match="post_training: math needs math_source"):
        load_recipe(path)


def test_rl_settings_reach_trl_by_name_and_ours_stay_out():
    from trl import GRPOConfig

    from tasks.recipe import RLSection
    from tasks.training.worker import trainer_args

    section = RLSection(
        loss_type="dapo",
        scale_rewards="group",
        steps_per_generation=4,
        num_iterations=2,
        mask_truncated_completions=True,
        sources=["humaneval"],
        per_device_train_batch_size=8,
    )
    args = trainer_args(section.to_json(), GRPOConfig)
    assert args["scale_rewards"] == "group" and args["steps_per_generation"] == 4 and args["num_iterations"] == 2
    assert args["lr_scheduler_type"] == "constant" and args["mask_truncated_completions"] is True
    assert not {"stop_at_code_end", "sources", "shuffle_seed", "reward", "drop_equal_groups"} & set(args)
    assert "scale_rewards" not in trainer_args(
        RLSection().to_json(), GRPOConfig
    )  # unset: the worker decides by loss_type


def test_paper_recipe_uses_the_reference_rl_settings():
    from tasks.recipe import load_recipe

    rl = load_recipe(PROJECT_ROOT / "configs" / "qwen2.5-coder-7b-think-anywhere.yaml").rl
    assert rl.scale_rewards == "group" and rl.steps_per_generation == 16 and rl.lr_scheduler_type == "constant"
    assert rl.learning_rate == 1e-6 and rl.num_generations == 8 and rl.beta == 0


def test_scale_rewards_values_are_checked(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("rl:\n  scale_rewards: std\n")
    with pytest.raises(RecipeError, match="rl.scale_rewards"):
        load_recipe(recipe)


def test_the_rlmt_sweep_adds_rlvr_arms_and_rejects_lengths_that_say_nothing_new():
    from tasks.recipe import MidtrainingSection

    mid = MidtrainingSection(arms=["sft_think", "sft_think_rlmt"], rl={"max_steps": 12}, rlmt_sweep=[6, 24])
    assert mid.rlvr_arms() == ["sft_think", "sft_think_rlmt", "sft_think_rlmt_6", "sft_think_rlmt_24"]
    for sweep in ([12], [0], [6, 6]):  # 12 is the sft_think_rlmt arm, 0 steps is sft_think
        with pytest.raises(ValueError, match="rlmt_sweep"):
            MidtrainingSection(rl={"max_steps": 12}, rlmt_sweep=sweep)
