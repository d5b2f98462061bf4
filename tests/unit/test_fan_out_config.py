"""The fan-out runner's settings: validated in the recipe, a missing extra named, tasks found by path."""

import importlib.util

import pytest
from conftest import PROJECT_ROOT


def test_runner_config_is_validated_and_a_missing_extra_is_named():
    from flows.runtime.fan_out import build_task_runner, task_at, task_path
    from tasks.coldstart.build import build_coldstart_shard
    from tasks.recipe import RecipeError, RunnerConfig, load_recipe

    with pytest.raises(RecipeError, match="runner.kind"):
        load_recipe(PROJECT_ROOT / "configs" / "tiny.yaml", ["runner.kind=spark"])
    assert task_at(task_path(build_coldstart_shard)) is build_coldstart_shard
    if importlib.util.find_spec("prefect_ray") is None:
        with pytest.raises(RecipeError, match=r"pip install 'thinkflow\[ray\]'"):
            build_task_runner(RunnerConfig(kind="ray"))
