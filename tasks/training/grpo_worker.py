"""The worker's GRPO trainer: TRL's GRPOTrainer with the recipe's reward terms (scored in the sandbox
for code), optional bf16 rollouts and the fixed probe set. Run by tasks/training/worker.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tasks.training.worker import common_args, load_model, lora_config, read_jsonl, trainer_args


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


def build_trainer(spec: dict[str, Any]):
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from sandbox.config import SandboxConfig
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
