"""Thinking Mid-training: a raw-text corpus → chunks → thoughts interleaved → SFT on one half → RL on
the other (prefix → thought + next segment, judged, Dr.GRPO) → optional RLVR post-training → evaluation.

    prefect deployment run 'thinking-midtraining/default' --param config=configs/default.yaml
    thinkflow run thinking-midtraining --config configs/tiny.yaml [--set midtraining.post_training=none] [--json]
    thinkflow run thinking-midtraining --config configs/tiny.yaml --set 'midtraining.arms=[base,sft_raw,sft_think,sft_think_rlmt]'

Annotation runs as one cached task per shard, ``corpus.parallel_shards`` at a time on the recipe's
``runner`` (threads, Dask, Ray): a run that is killed part-way redoes only the shards that had not finished. RLVR
post-training (``midtraining.post_training``) is ``code`` (the Think-Anywhere RL stage on the
recipe's problems, calibrated once for all arms when ``calibration`` is on, then pass@1 of every arm's start and
of its RLVR checkpoint on the held-out problems) or ``math`` (the ``math`` reward on
``midtraining.math_source``), once per arm of ``midtraining.arms``: from the base model, from SFT on
the raw chunks (the same chunks and budget, no thoughts), from SFT on the thought-augmented chunks,
and from that SFT followed by RL mid-training; all arms on the same problems and settings.
"""

from __future__ import annotations

from prefect import flow

from flows.runtime.stage_log import StageLog
from flows.stage_sequences import annotator_model, code_problems, evaluate_checkpoints, final_outputs, pipeline_recipe
from tasks.midtraining.corpus import annotate_corpus_shard, assemble_corpus, chunk_corpus, raw_corpus, shard_count
from tasks.midtraining.evaluation import evaluate_midtraining
from tasks.midtraining.judge_agreement import measure_judge_agreement
from tasks.midtraining.report import arm_label, compare_midtraining
from tasks.models import build_base_model
from tasks.problems.calibration import calibrate_rl_problems_for_arms
from tasks.problems.math_problems import load_math_problems
from tasks.recipe import ModelConfig
from tasks.training.rl import train_grpo, train_math_rl, train_midtraining_rl
from tasks.training.sft import train_sft


@flow(name="thinking-midtraining")
def thinking_midtraining(config: str = "configs/default.yaml", overrides: list[str] | None = None) -> dict:
    recipe = pipeline_recipe(config, overrides)
    stages = StageLog("thinking-midtraining", recipe.runner, recipe.tracking)
    corpus, annotator, mid = recipe.corpus, recipe.annotator, recipe.midtraining

    base_model = stages.run("base model", build_base_model, recipe.model)
    annotator_id = annotator_model(stages, recipe, base_model)
    chunks = stages.run("chunks", chunk_corpus, base_model, corpus)
    shard_ids = stages.run_shards(
        "annotate",
        annotate_corpus_shard,
        shard_count(chunks, corpus),
        corpus.parallel_shards,
        chunks_id=chunks,
        annotator_model_id=annotator_id,
        annotator=annotator,
        corpus=corpus,
        dtype=recipe.model.torch_dtype,
    )
    sft_half, rl_half, held_out = stages.run("corpus", assemble_corpus, chunks, shard_ids, corpus)
    sft_model = stages.run("mid-training sft", train_sft, base_model, sft_half, mid.sft, "text")
    # the annotator judges RL mid-training's guesses only when the recipe asks for an LLM judge
    rl_judge_id, rl_judge = (annotator_id, annotator) if mid.rl.reward.judge == "llm" else (None, None)
    rlmt_model = stages.run("mid-training rl", train_midtraining_rl, sft_model, rl_half, mid.rl, rl_judge_id, rl_judge)
    starts = {"base": base_model, "sft_think": sft_model, "sft_think_rlmt": rlmt_model}
    for steps in mid.rlmt_sweep:  # the same RL mid-training from the same SFT model, for fewer or more steps
        starts[f"sft_think_rlmt_{steps}"] = stages.run(
            f"mid-training rl ({steps} steps)",
            train_midtraining_rl,
            sft_model,
            rl_half,
            mid.rl.model_copy(update={"max_steps": steps}),
            rl_judge_id,
            rl_judge,
        )
    if "sft_raw" in mid.arms:
        raw_half = stages.run("raw corpus", raw_corpus, sft_half)
        starts["sft_raw"] = stages.run("mid-training sft (raw)", train_sft, base_model, raw_half, mid.sft, "text")
    held_out_reports = {}
    if corpus.eval_fraction > 0:  # the paper's mid-training table, on chunks no stage trained on
        held_out_reports = {
            model: stages.run(
                f"mid-training eval {model}",
                evaluate_midtraining,
                starts[model],
                held_out,
                mid.evaluate,
                mid.rl.reward,
                mid.rl.max_prompt_length,
                rl_judge_id,
                rl_judge,
                recipe.model.torch_dtype,
            )
            for model in MODELS
            if model in starts
        }
    finals, evaluation, agreement, calibration = {"sft_think_rlmt": rlmt_model}, None, None, None
    arms = mid.rlvr_arms()
    if mid.post_training == "code":
        loaded, train = code_problems(stages, recipe, base_model)
        if (
            recipe.calibration.enabled
        ):  # one RL set for every arm: problems whose pass rate, pooled over the arms' starts, is in the band
            calibration = train = stages.run(
                "calibrate rlvr",
                calibrate_rl_problems_for_arms,
                [starts[arm] for arm in arms],
                list(arms),
                train,
                recipe.calibration,
                recipe.rl.draw(),
                recipe.sandbox,
                recipe.prompts.system,
                recipe.model.torch_dtype,
            )
        finals = {
            arm: stages.run(
                f"rlvr (code) from {arm}",
                train_grpo,
                starts[arm],
                train,
                recipe.rl,
                recipe.sandbox,
                recipe.prompts.system,
            )
            for arm in arms
        }
        before_rlvr = ([("base", base_model)] if recipe.evaluate.evaluate_base_model else []) + [
            (arm, starts[arm]) for arm in arms if arm != "base"
        ]  # each arm's start, on the problems its RLVR run is judged on
        evaluation = evaluate_checkpoints(
            stages, recipe, before_rlvr + [(arm_label(arm), finals[arm]) for arm in arms], loaded
        )
    elif mid.post_training == "math":
        math_problems = stages.run("math problems", load_math_problems, mid.math_source)
        finals = {
            arm: stages.run(
                f"rlvr (math) from {arm}", train_math_rl, starts[arm], math_problems, recipe.rl, recipe.prompts.system
            )
            for arm in arms
        }
    if held_out_reports and mid.agreement_judge is not None:
        judge = mid.agreement_judge
        judge_model = (
            None
            if judge.kind == "openai"
            else base_model
            if judge.model == "policy"
            else stages.run("agreement judge model", build_base_model, ModelConfig(name=judge.model))
        )
        agreement = stages.run(
            "judge agreement",
            measure_judge_agreement,
            list(held_out_reports.values()),
            list(held_out_reports),
            held_out,
            judge,
            judge_model,
            mid.rl.reward.threshold,
            recipe.model.torch_dtype,
        )
    if held_out_reports:
        rlvr = {arm: finals[arm] for arm in arms} if mid.post_training != "none" else {}
        variant = recipe.evaluate.variants[0]
        rlvr_reports = {arm: evaluation.reports[(arm_label(arm), variant)] for arm in arms} if evaluation else {}
        start_reports = (
            {arm: evaluation.reports[(arm, variant)] for arm in arms if (arm, variant) in evaluation.reports}
            if evaluation
            else {}
        )
        stages.run(
            "mid-training comparison",
            compare_midtraining,
            list(held_out_reports.values()),
            list(held_out_reports),
            rlmt_model,
            rlvr,
            rlvr_reports,
            agreement,
            start_reports,
            calibration,
            recipe.rl.completions_per_generation(),
            evaluation and evaluation.comparison,
        )
    main_arm = "sft_think_rlmt" if "sft_think_rlmt" in finals else next(iter(finals))
    return stages.finish(
        comparison=evaluation and evaluation.comparison,
        outputs=final_outputs(finals[main_arm], evaluation, arm_label(main_arm), recipe),
    )


MODELS = ("base", "sft_raw", "sft_think", "sft_think_rlmt")  # the held-out evaluation's models, in the report's order
