"""Thinking Mid-training, data half: a raw-text corpus → chunks → thoughts interleaved → SFT and RL sets.

    prefect deployment run 'thinking-midtraining/default' --param config=configs/default.yaml
    thinkflow run thinking-midtraining --config configs/tiny.yaml [--set corpus.mode=interleave] [--json]

Annotation runs as one cached task per shard, ``corpus.parallel_shards`` at a time on the flow's
task runner: a run that is killed part-way redoes only the shards that had not finished. The
training stages (SFT on one half, RL with an LLM judge on the other) come with issue 5.
"""

from __future__ import annotations

from prefect import flow

from flows.stage_log import StageLog
from flows.think_anywhere import annotator_model, resolve_config
from tasks.midtraining import annotate_corpus_shard, assemble_corpus, chunk_corpus, shard_count
from tasks.models import build_base_model
from tasks.recipe import load_recipe


@flow(name="thinking-midtraining")
def thinking_midtraining(config: str = "configs/default.yaml", overrides: list[str] | None = None) -> dict:
    recipe = load_recipe(resolve_config(config), overrides)
    stages = StageLog("thinking-midtraining")
    corpus, annotator, dtype = recipe.corpus.as_key(), recipe.annotator, recipe.model.torch_dtype

    base_model = stages.run("base model", build_base_model, recipe.model.as_key())
    annotator_id = annotator_model(stages, recipe, base_model)
    chunks = stages.run("chunks", chunk_corpus, base_model, corpus)
    shard_ids = stages.run_shards("annotate", annotate_corpus_shard, shard_count(chunks, corpus), recipe.corpus.parallel_shards, chunks_id=chunks,
                                  annotator_model_id=annotator_id, annotator_what=annotator.what(), annotator_how=annotator.how(),
                                  corpus_cfg=corpus, dtype=dtype)
    stages.run("corpus", assemble_corpus, chunks, shard_ids, corpus)
    return stages.finish()
