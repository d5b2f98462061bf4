import pytest

from tasks.recipe import RecipeError, load_recipe

from conftest import PROJECT_ROOT


@pytest.mark.parametrize("name", ["tiny.yaml", "default.yaml"])
def test_shipped_recipes_load(name):
    recipe = load_recipe(PROJECT_ROOT / "configs" / name)
    assert recipe.rl.loss_type == "dr_grpo"
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
    recipe = load_recipe(PROJECT_ROOT / "configs" / "tiny.yaml", ["rl.max_steps=9", "sft.bf16=true", "evaluate.limit_per_source=3"])
    assert (recipe.rl.max_steps, recipe.sft.bf16, recipe.evaluate.limit_per_source) == (9, True, 3)
    with pytest.raises(RecipeError, match="KEY=VALUE"):
        load_recipe(PROJECT_ROOT / "configs" / "tiny.yaml", ["rl.max_steps"])


def test_missing_recipe_is_named(tmp_path):
    with pytest.raises(RecipeError, match="does not exist"):
        load_recipe(tmp_path / "nope.yaml")
