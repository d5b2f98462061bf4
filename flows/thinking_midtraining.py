"""Thinking Mid-training: a raw-text corpus → chunks → thoughts interleaved → SFT on one half → RL on
the other (prefix → thought + next segment, judged, Dr.GRPO) → optional RLVR post-training → evaluation.

    prefect deployment run 'thinking-midtraining/default' --param config=configs/default.yaml
    thinkflow run thinking-midtraining --config configs/tiny.yaml [--set midtraining.post_training=none] [--json]

Annotation runs as one cached task per shard, ``corpus.parallel_shards`` at a time on the recipe's
``runner`` (threads, Dask, Ray): a run that is killed part-way redoes only the shards that had not finished. RLVR
post-training (``midtraining.post_training``) is ``code`` (the Think-Anywhere RL stage on the
recipe's problems, then pass@1 on their held-out split) or ``math`` (the ``math`` reward on
``midtraining.math_source``).
"""

from __future__ import annotations

from prefect import flow

from flows.evaluate import evaluate_checkpoints
from flows.stage_log import StageLog
from flows.think_anywhere import annotator_model, resolve_config
from tasks.filters import filter_problems
from tasks.math_data import load_math_problems
from tasks.midtraining import annotate_corpus_shard, assemble_corpus, chunk_corpus, shard_count
from tasks.models import build_base_model
from tasks.problems import load_problems, split_problems
from tasks.recipe import load_recipe
from tasks.training import train_grpo, train_math_rl, train_midtraining_rl, train_sft


@flow(name="thinking-midtraining")
def thinking_midtraining(config: str = "configs/default.yaml", overrides: list[str] | None = None) -> dict:
    recipe = load_recipe(resolve_config(config), overrides)
    stages = StageLog("thinking-midtraining", recipe.runner)
    corpus, annotator, mid = recipe.corpus.as_key(), recipe.annotator, recipe.midtraining
    system, sandbox, dtype = recipe.prompts.system, recipe.sandbox.as_key(), recipe.model.torch_dtype

    base_model = stages.run("base model", build_base_model, recipe.model.as_key())
    annotator_id = annotator_model(stages, recipe, base_model)
    chunks = stages.run("chunks", chunk_corpus, base_model, corpus)
    shard_ids = stages.run_shards("annotate", annotate_corpus_shard, shard_count(chunks, corpus), recipe.corpus.parallel_shards, chunks_id=chunks,
                                  annotator_model_id=annotator_id, annotator_what=annotator.what(), annotator_how=annotator.how(),
                                  corpus_cfg=corpus, dtype=dtype)
    sft_half, rl_half = stages.run("corpus", assemble_corpus, chunks, shard_ids, corpus)
    sft_model = stages.run("mid-training sft", train_sft, base_model, sft_half, mid.sft.as_key(), "text")
    rl_model = stages.run("mid-training rl", train_midtraining_rl, sft_model, rl_half, mid.rl.as_key(), annotator_id,
                          annotator.what(), annotator.how())
    comparison = None
    if mid.post_training == "code":
        loaded = stages.run("problems", load_problems, recipe.problems.as_key(), sandbox)
        problems = stages.run("filter", filter_problems, loaded, base_model, recipe.problems.filters, sandbox, system, dtype)
        train, _ = stages.run("split", split_problems, problems, recipe.problems.as_key())
        final = stages.run("rlvr (code)", train_grpo, rl_model, train, recipe.rl.as_key(), sandbox, system)
        checkpoints = [("base", base_model)] if recipe.evaluate.evaluate_base_model else []
        comparison = evaluate_checkpoints(stages, recipe, checkpoints + [("rlvr", final)], loaded)
    elif mid.post_training == "math":
        math_problems = stages.run("math problems", load_math_problems, mid.math_source)
        stages.run("rlvr (math)", train_math_rl, rl_model, math_problems, recipe.rl.as_key(), system)
    return stages.finish(comparison=comparison)
