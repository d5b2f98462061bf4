"""Think-Anywhere: problems → filters → split → rejection-sampled solutions → cold-start set with
inline thoughts → SFT → GRPO → evaluation of
the base, SFT and RL models, compared in one table.

    prefect deployment run 'think-anywhere/default' --param config=configs/default.yaml
    thinkflow run think-anywhere --config configs/tiny.yaml [--set rl.max_steps=8] [--json]
    thinkflow demo

Every stage is a cached Prefect task that takes and returns artifact ids; re-running a finished
recipe recomputes nothing, and changing one section recomputes that stage and what follows.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from flows.evaluate import evaluate_checkpoints
from flows.stage_log import StageLog
from tasks.coldstart import assemble_coldstart_set, build_coldstart_shard, coldstart_shards
from tasks.filters import filter_problems
from tasks.models import build_base_model
from tasks.problems import load_problems, split_problems
from tasks.recipe import ModelConfig, load_recipe
from tasks.solutions import attach_sampled_solutions, sample_solutions_shard, solution_shards
from tasks.stage_run import PROJECT_ROOT
from tasks.training import add_think_tokens_to_model, train_grpo, train_sft


def annotator_model(stages: StageLog, recipe, base_model: str) -> str | None:
    """The local model the annotator runs: the policy, another registry model, or none (an endpoint)."""
    if recipe.annotator.kind == "openai":
        return None
    if recipe.annotator.model == "policy":
        return base_model
    return stages.run("annotator model", build_base_model, ModelConfig(name=recipe.annotator.model).as_key())


def resolve_config(config: str) -> Path:
    path = Path(config)
    return path if path.exists() or path.is_absolute() else PROJECT_ROOT / path


@flow(name="think-anywhere")
def think_anywhere(config: str = "configs/default.yaml", overrides: list[str] | None = None) -> dict:
    recipe = load_recipe(resolve_config(config), overrides)
    stages = StageLog("think-anywhere", recipe.runner)
    system, sandbox, dtype = recipe.prompts.system, recipe.sandbox.as_key(), recipe.model.torch_dtype

    base_model = stages.run("base model", build_base_model, recipe.model.as_key())
    loaded = stages.run("problems", load_problems, recipe.problems.as_key(), sandbox)
    problems = stages.run("filter", filter_problems, loaded, base_model, recipe.problems.filters, sandbox, system, dtype)
    train, _ = stages.run("split", split_problems, problems, recipe.problems.as_key())  # evaluation holds out by id
    annotator = dict(annotator_model_id=annotator_model(stages, recipe, base_model), annotator_what=recipe.annotator.what(),
                     annotator_how=recipe.annotator.how(), policy_id=base_model, sandbox_cfg=sandbox, system_prompt=system, dtype=dtype)
    solutions, coldstart = recipe.solutions.as_key(), recipe.coldstart.as_key()
    samples = stages.run_shards("solutions", sample_solutions_shard, solution_shards(train, solutions), recipe.solutions.parallel_shards,
                                problems_id=train, solutions_cfg=solutions, **annotator)
    train = stages.run("train split with solutions", attach_sampled_solutions, train, samples, solutions)
    shards = stages.run_shards("cold-start", build_coldstart_shard, coldstart_shards(train, coldstart), recipe.coldstart.parallel_shards,
                               problems_id=train, coldstart_cfg=coldstart, **annotator)
    coldstart = stages.run("cold-start set", assemble_coldstart_set, train, shards, coldstart)
    policy = base_model
    if recipe.sft.think_tokens.enabled:  # Think-Anywhere*: the tags as new tokens; stage 1 trains only their rows
        policy = stages.run("think tokens", add_think_tokens_to_model, base_model)
        policy = stages.run("sft stage 1 (think-token rows)", train_sft, policy, coldstart, recipe.sft.stage1_key())
    sft_model = stages.run("sft", train_sft, policy, coldstart, recipe.sft.as_key())
    rl_model = stages.run("rl", train_grpo, sft_model, train, recipe.rl.as_key(), sandbox, system)
    checkpoints = [("base", base_model)] if recipe.evaluate.evaluate_base_model else []
    comparison = evaluate_checkpoints(stages, recipe, checkpoints + [("sft", sft_model), ("rl", rl_model)], loaded)
    return stages.finish(comparison=comparison)
