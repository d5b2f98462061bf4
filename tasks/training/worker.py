"""Training in its own process: ``accelerate launch -m tasks.training.worker SPEC.json``.

The Prefect task (tasks/training/stages.py) writes a spec, launches this process, streams its output into
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
        "report_to": "none",
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


def sft_trainer(spec: dict[str, Any]):
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


def equal_reward_groups_dropped(trainer_class):
    """GRPOTrainer that drops groups whose rewards are all equal (the reference's rejection
    sampling): their completions are masked out of the loss, and ``groups_dropped`` is logged."""

    class DroppingGRPOTrainer(trainer_class):
        def _generate_and_score_completions(self, inputs):
            output = super()._generate_and_score_completions(inputs)
            groups = output["advantages"].view(-1, self.num_generations)
            equal = groups.abs().amax(dim=1) < 1e-6  # mean-centred advantages are all 0 when rewards tie
            mode = "train" if self.model.training else "eval"
            self._metrics[mode]["groups_dropped"].append(float(equal.sum()))
            self._metrics[mode]["groups"].append(float(groups.shape[0]))
            if equal.any():
                keep = (~equal).repeat_interleave(self.num_generations).to(output["completion_mask"].dtype)
                output["completion_mask"] = output["completion_mask"] * keep.unsqueeze(1)
            return output

    return DroppingGRPOTrainer


def grpo_trainer(spec: dict[str, Any]):
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from sandbox import SandboxConfig
    from tasks.generation import end_generations_at_code_end, sample_by_inverse_cdf
    from tasks.training.checkpoints import mark_complete_callback
    from tasks.training.rewards import reward_functions

    tokenizer, model = load_model(spec["model_dir"])
    tokenizer.padding_side = "left"
    section = spec["section"]
    sample_by_inverse_cdf(model)  # rollouts and probe samples; innermost, so it samples after every other processor
    if section.get("stop_at_code_end"):
        end_generations_at_code_end(model, tokenizer)
    rows = read_jsonl(spec["data_path"])
    terms = reward_functions(spec["reward"]["name"], spec["reward"], SandboxConfig(**spec["sandbox"]))
    args = trainer_args(section, GRPOConfig)
    if args.get("loss_type") == "dr_grpo":
        args.setdefault("scale_rewards", "none")
    if args.get("use_vllm"):
        import torch

        if not torch.cuda.is_available():
            raise RuntimeError(
                "rl.use_vllm needs a GPU and vLLM (pip install 'thinkflow[gpu]'); set it to false on CPU"
            )
    else:
        args.pop("vllm_mode", None)
    if section.get("bf16"):
        generate_under_bf16_autocast(model)
    args.pop("probe", None)
    config = GRPOConfig(
        **{**common_args(spec), "top_k": 0, "reward_weights": [weight for _, weight in terms.values()], **args}
    )
    trainer_class = equal_reward_groups_dropped(GRPOTrainer) if section["drop_equal_groups"] else GRPOTrainer
    peft_config = lora_config(section["lora"]) if section["train"] == "lora" else None
    callbacks = [mark_complete_callback()]
    if spec.get("probe_path"):
        from tasks.training.probe import probe_callback

        callbacks.append(
            probe_callback(
                read_jsonl(spec["probe_path"]),
                terms,
                tokenizer,
                section,
                Path(spec["output_dir"]) / "probe.jsonl",
                bool(section.get("bf16")),
            )
        )
    trainer = trainer_class(
        model=model,
        reward_funcs=[function for function, _ in terms.values()],
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=callbacks,
    )
    return trainer, tokenizer


def generate_under_bf16_autocast(model) -> None:
    """Rollouts decoded under bf16 autocast like the training passes (float32 master weights stay)."""
    import functools

    import torch

    inner = model.generate

    @functools.wraps(inner)
    def generate(*args, **kwargs):
        device = next(model.parameters()).device.type
        with torch.autocast(device, dtype=torch.bfloat16):
            return inner(*args, **kwargs)

    model.generate = generate


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
    trainer, tokenizer = {"sft": sft_trainer, "grpo": grpo_trainer}[spec["kind"]](spec)
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
