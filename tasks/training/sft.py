"""The SFT stage (TRL's SFTTrainer in the worker process, tasks/training/sft_worker.py) and the
Think-Anywhere* step that gives the thinking tags tokens of their own."""

from __future__ import annotations

from tasks.recipe import SFTSection
from tasks.stage_run import StageRun, stage
from tasks.training.launch import TrainingFailed, run_worker, trainer_series

STAGE_FILES = (
    "tasks.training.worker",
    "tasks.training.sft_worker",
)  # the process the stage launches: part of its code version


SFT_SERIES = {"loss": "loss", "grad_norm": "grad_norm", "learning_rate": "learning_rate"}


@stage("sft", inputs={"model": "base_model_id", "dataset": "dataset_id"}, retries=1, gpu=True)
def train_sft(base_model_id: str, dataset_id: str, sft: SFTSection, data_format: str = "chat") -> str:
    """SFT with TRL's SFTTrainer: ``chat`` data (prompt/completion: loss on the completion only) or
    ``text`` (plain language modelling); full, LoRA, or only the think-token rows (``new_rows``)."""
    with StageRun() as run:
        spec = {
            "stage": "sft",
            "kind": "sft",
            "model_dir": str(run.input_path("model")),
            "data_format": data_format,
            "data_path": str(run.input_path("dataset") / "train.jsonl"),
        }
        work, history, timing = run_worker(run, spec, sft)
        series = trainer_series(run, history, SFT_SERIES)
        losses = [v for _, v in series.get("loss", [])]
        if not losses:
            raise TrainingFailed("SFT logged no loss: the dataset produced no training steps")
        metrics = {"loss_first": losses[0], "loss_last": losses[-1], "steps": len(losses), **timing}
        name = {"new_rows": "sft-think-token-rows", "lora": "sft-lora"}.get(sft.train, "sft")
        return run.output("checkpoint", work / "model", kind="checkpoint", name=name, metrics=metrics, series=series)


@stage("add_think_tokens", inputs={"model": "base_model_id"})
def add_think_tokens_to_model(base_model_id: str) -> str:
    """Think-Anywhere*: the base model with the thinking tags as tokens of their own (rows initialised
    from related tokens, tasks/training/think_tokens.py); their ids in ``think_tokens.json``."""
    from tasks.models import load_for_inference
    from tasks.training.think_tokens import add_think_tokens, write_record

    with StageRun() as run:
        tokenizer, model = load_for_inference(run.input_path("model"), "float32")
        ids = add_think_tokens(model, tokenizer)
        staged = run.staging("model")
        model.save_pretrained(staged)
        tokenizer.save_pretrained(staged)
        write_record(staged, ids)
        run.log.info("think tokens added: %s", ids)
        return run.output(
            "checkpoint", staged, kind="checkpoint", name="base+think-tokens", metrics={"tokens_added": len(ids)}
        )
