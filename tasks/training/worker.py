"""Training in its own process: ``accelerate launch -m tasks.training.worker SPEC.json``.

The Prefect task (tasks/training/sft.py, tasks/training/rl.py; tasks/training/launch.py) writes a spec, launches this process, streams its output into
the run log and enforces the wall-clock limit; killing it frees every byte the trainer held.

The worker trains in ``spec.output_dir`` (a folder that outlives a failed attempt), saves a
checkpoint every ``save_steps`` steps and marks it complete once saved (tasks/training/checkpoints.py). On
start it deletes unmarked checkpoints and resumes from the newest complete one: model, optimizer,
scheduler, RNG states and data position, so a killed run continues where it stopped. At the end
it writes the model (LoRA merged in) to ``output_dir/model``, TRL's log history to
``log_history.json`` and what it resumed from to ``resume.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def device_args() -> dict[str, Any]:
    import torch

    return {"use_cpu": not torch.cuda.is_available()}


def load_model(model_dir: str):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    return tokenizer, model


def read_jsonl(path: str) -> list[dict[str, Any]]:
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]


def common_args(spec: dict[str, Any]) -> dict[str, Any]:
    """Trainer settings every stage shares: checkpoints, logging, device."""
    return {
        "output_dir": str(Path(spec["output_dir"]) / "trainer"),
        "logging_steps": 1,
        "save_strategy": "steps",
        "save_total_limit": 2,
        "report_to": spec.get(
            "report_to", "none"
        ),  # mlflow: into the stage's tracker run (MLFLOW_RUN_ID, tasks/tracking.py)
        "disable_tqdm": True,
        **device_args(),
    }


def trainer_args(section: dict[str, Any], config_class) -> dict[str, Any]:
    """The recipe section's settings that ``config_class`` (TRL's SFTConfig / GRPOConfig) has a
    field for, passed through as they are (None means "TRL's default"), then the section's ``trl``
    extras. Epochs, when set, decide the length (``max_steps`` -1)."""
    import dataclasses

    known = {f.name for f in dataclasses.fields(config_class)}
    args = {name: value for name, value in section.items() if name in known and value is not None}
    if section.get("num_train_epochs"):
        args["max_steps"] = -1
    args.update(section.get("trl") or {})
    return args


def lora_config(settings: dict[str, Any]):
    from peft import LoraConfig

    return LoraConfig(
        r=settings["r"],
        lora_alpha=settings["alpha"],
        lora_dropout=settings["dropout"],
        target_modules=settings["target_modules"],
        task_type="CAUSAL_LM",
    )


TRAINERS = {
    "sft": "tasks.training.sft_worker",
    "grpo": "tasks.training.grpo_worker",
}  # by spec kind; each has build_trainer(spec)


def trainer_for(spec: dict[str, Any]):
    """The kind's trainer and tokenizer. Its module is imported by name, so this file reaches neither:
    each stage declares the one it runs (``STAGE_FILES``), and an RL change leaves SFT's code version alone."""
    import importlib

    return importlib.import_module(TRAINERS[spec["kind"]]).build_trainer(spec)


def resume_point(output_dir: Path) -> Path | None:
    from tasks.training.checkpoints import discard_incomplete, last_complete_checkpoint

    trainer_dir = output_dir / "trainer"
    for path in discard_incomplete(trainer_dir):
        print(f"thinkflow: deleted {path.name}: its save never completed", flush=True)
    return last_complete_checkpoint(trainer_dir)


def save_model(trainer, tokenizer, folder: Path) -> None:
    """The trained model as a plain checkpoint (a LoRA adapter merged into its base)."""
    model = trainer.model
    if hasattr(model, "merge_and_unload"):
        model.save_pretrained(str(folder.parent / "adapter"))
        model = model.merge_and_unload()
    model.save_pretrained(str(folder))
    tokenizer.padding_side = "right"
    tokenizer.save_pretrained(str(folder))


def show_progress(trainer, stage: str) -> None:
    """Step counts, rate and time left instead of the trainer's raw log dict at every step."""
    from transformers.trainer_callback import PrinterCallback

    from tasks.progress import training_progress_callback

    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(training_progress_callback(stage))


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    import torch

    torch.set_num_threads(spec.get("threads") or torch.get_num_threads())
    out = Path(spec["output_dir"])
    trainer, tokenizer = trainer_for(spec)
    show_progress(trainer, spec["stage"])
    resume = resume_point(out)
    if resume is not None:
        print(f"thinkflow: resuming {spec['stage']} from {resume.name}", flush=True)
        if getattr(trainer, "thinkflow_rows", None):
            from tasks.training.think_tokens import restore_rows

            restore_rows(trainer.model.get_base_model(), trainer.thinkflow_rows, resume)
    (out / "resume.json").write_text(json.dumps({"resumed_from_step": int(resume.name.split("-")[1]) if resume else 0}))
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    if trainer.state.global_step < trainer.state.max_steps:  # transformers only warns when the data cannot fill a batch
        raise SystemExit(
            f"thinkflow: {spec['stage']} stopped after {trainer.state.global_step} of {trainer.state.max_steps} steps: "
            f"its data ran out before a batch filled (a GRPO generation batch needs "
            f"per_device_train_batch_size x steps_per_generation / num_generations distinct prompts); nothing is saved"
        )
    if trainer.accelerator.is_main_process:
        from tasks.training.think_tokens import read_record, write_record

        save_model(trainer, tokenizer, out / "model")
        if read_record(Path(spec["model_dir"])):
            write_record(out / "model", read_record(Path(spec["model_dir"])))
        (out / "log_history.json").write_text(json.dumps(trainer.state.log_history, indent=1))
    print(f"thinkflow: {spec['stage']} finished after {trainer.state.global_step} steps", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
