"""Think-Anywhere: problems → filters → split → rejection-sampled solutions → cold-start set with
inline thoughts → SFT → calibration (the RL set) → GRPO (and the upfront-only arm) → evaluation of
the base, SFT and RL models, compared in one table.

    prefect deployment run 'think-anywhere/default' --param config=configs/default.yaml
    thinkflow run think-anywhere --config configs/tiny.yaml [--set rl.max_steps=8] [--json]
    thinkflow demo

Every stage is a cached Prefect task that takes and returns artifact ids; re-running a finished
recipe recomputes nothing, and changing one section recomputes that stage and what follows.
"""

from __future__ import annotations

from prefect import flow

from flows.runtime.stage_log import StageLog
from flows.stage_sequences import annotator_model, code_problems, evaluate_checkpoints, final_outputs, pipeline_recipe
from tasks.coldstart.build import assemble_coldstart_set, build_coldstart_shard, coldstart_shards
from tasks.models import build_base_model
from tasks.problems.calibration import calibrate_rl_problems
from tasks.problems.solutions import attach_sampled_solutions, sample_solutions_shard, solution_shards
from tasks.training.rl import train_grpo
from tasks.training.sft import add_think_tokens_to_model, train_sft


@flow(name="think-anywhere")
def think_anywhere(config: str = "configs/default.yaml", overrides: list[str] | None = None) -> dict:
    recipe = pipeline_recipe(config, overrides)
    stages = StageLog("think-anywhere", recipe.runner, recipe.tracking)

    base_model = stages.run("base model", build_base_model, recipe.model)
    loaded, train = code_problems(stages, recipe, base_model)
    writer = dict(
        policy_id=base_model,
        annotator_model_id=annotator_model(stages, recipe, base_model),
        annotator=recipe.annotator,
        sandbox=recipe.sandbox,
        system_prompt=recipe.prompts.system,
        dtype=recipe.model.torch_dtype,
    )
    samples = stages.run_shards(
        "solutions",
        sample_solutions_shard,
        solution_shards(train, recipe.solutions),
        recipe.solutions.parallel_shards,
        problems_id=train,
        solutions=recipe.solutions,
        **(
            writer
            if recipe.solutions.sampler == "annotator"
            else {**writer, "annotator_model_id": None, "annotator": None}
        ),
    )  # the annotator samples solutions only when the recipe says so: otherwise it is no part of the stage
    train = stages.run("train split with solutions", attach_sampled_solutions, train, samples, recipe.solutions)
    shards = stages.run_shards(
        "cold-start",
        build_coldstart_shard,
        coldstart_shards(train, recipe.coldstart),
        recipe.coldstart.parallel_shards,
        problems_id=train,
        coldstart=recipe.coldstart,
        **writer,
    )
    coldstart = stages.run("cold-start set", assemble_coldstart_set, train, shards, recipe.coldstart)
    policy = base_model
    if recipe.sft.think_tokens.enabled:  # Think-Anywhere*: the tags as new tokens; stage 1 trains only their rows
        policy = stages.run("think tokens", add_think_tokens_to_model, base_model)
        policy = stages.run("sft stage 1 (think-token rows)", train_sft, policy, coldstart, recipe.sft.stage1())
    sft_model = stages.run("sft", train_sft, policy, coldstart, recipe.sft)
    rl_problems = train
    if recipe.calibration.enabled:  # the RL set: problems the SFT model solves sometimes, measured
        rl_problems = stages.run(
            "calibrate",
            calibrate_rl_problems,
            sft_model,
            train,
            recipe.calibration,
            recipe.rl.draw(),
            recipe.sandbox,
            recipe.prompts.system,
            recipe.model.torch_dtype,
        )
    rl_model = stages.run("rl", train_grpo, sft_model, rl_problems, recipe.rl, recipe.sandbox, recipe.prompts.system)
    checkpoints = ([("base", base_model)] if recipe.evaluate.evaluate_base_model else []) + [
        ("sft", sft_model),
        ("rl", rl_model),
    ]
    if (
        "upfront_only" in recipe.rl_arms
    ):  # the paper's comparison: the same RL, a format reward for the upfront thought only
        checkpoints.append(
            (
                "rl-upfront-only",
                stages.run(
                    "rl (upfront-only arm)",
                    train_grpo,
                    sft_model,
                    rl_problems,
                    recipe.rl.upfront_only(),
                    recipe.sandbox,
                    recipe.prompts.system,
                ),
            )
        )
    evaluation = evaluate_checkpoints(stages, recipe, checkpoints, loaded)
    return stages.finish(comparison=evaluation.comparison, outputs=final_outputs(rl_model, evaluation, "rl", recipe))
