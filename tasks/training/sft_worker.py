"""The worker's SFT trainer: TRL's SFTTrainer on chat (prompt/completion) or text rows; full, LoRA,
or only the think-token rows (Think-Anywhere* stage 1). Run by tasks/training/worker.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tasks.training.worker import common_args, load_model, lora_config, read_jsonl, trainer_args


def build_trainer(spec: dict[str, Any]):
    """SFTTrainer for ``train``: ``full``, ``lora`` (plus the think-token rows when the model has
    them) or ``new_rows`` (Think-Anywhere* stage 1: only the think-token rows move)."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from tasks.training.checkpoints import mark_complete_callback
    from tasks.training.think_tokens import freeze_all_but_rows, read_record, rows_callback, train_rows

    tokenizer, model = load_model(spec["model_dir"])
    rows = read_jsonl(spec["data_path"])
    if spec.get("data_format", "chat") == "text":
        rows = [{"text": r["text"]} for r in rows]
    else:
        rows = [{"prompt": r["prompt"], "completion": r["completion"]} for r in rows]
    new_rows = sorted(read_record(Path(spec["model_dir"])).values())
    section = spec["section"]
    mode = section["train"]
    args = trainer_args(section, SFTConfig)
    if mode == "new_rows":
        freeze_all_but_rows(model, new_rows)
    if new_rows:
        args["weight_decay"] = 0.0  # a decayed row would move without a gradient
    lora_rows = mode == "lora" and bool(new_rows)
    callbacks = ([rows_callback(model, new_rows)] if lora_rows else []) + [mark_complete_callback()]
    config = SFTConfig(**{**common_args(spec), **args})
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=lora_config(section["lora"]) if mode == "lora" else None,
        callbacks=callbacks,
    )
    if lora_rows:  # stage 2 of Think-Anywhere*: LoRA plus the think-token rows
        train_rows(model, new_rows)
        trainer.thinkflow_rows = new_rows
    return trainer, tokenizer
