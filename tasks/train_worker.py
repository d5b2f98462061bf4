"""Training in its own process: ``python -m tasks.train_worker SPEC.json``.

The Prefect task (tasks/training.py) writes a spec, starts this process, streams its output into
the run log and enforces the wall-clock limit; killing it frees every byte the trainer held. The
worker writes the trained model to ``spec.output_dir/model`` and TRL's log history to
``spec.output_dir/log_history.json``, and nothing else.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _device_args() -> dict[str, Any]:
    import torch

    return {"use_cpu": not torch.cuda.is_available()}


def _load(model_dir: str):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    return tokenizer, model


def _read_jsonl(path: str) -> list[dict[str, Any]]:
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]


def run_sft(spec: dict[str, Any]) -> Any:
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    tokenizer, model = _load(spec["model_dir"])
    rows = [{"prompt": r["prompt"], "completion": r["completion"]} for r in _read_jsonl(spec["data_path"])]
    args = SFTConfig(
        output_dir=str(Path(spec["output_dir"]) / "trainer"),
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        **_device_args(),
        **spec["trainer_args"],
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
    trainer.train()
    return trainer, tokenizer


def reward_functions(sandbox_args: dict[str, Any]):
    """The three Think-Anywhere terms as TRL reward functions (names show up in TRL's logs)."""
    from sandbox import Job, SandboxConfig, run_batch
    from tasks.rewards import completion_text, correct_term, inline_think_term, upfront_think_term
    from tasks.thinking import extract_code

    sandbox_cfg = SandboxConfig(**sandbox_args)

    def correct(completions, problem_json, **kwargs):
        problems = [json.loads(p) for p in problem_json]
        jobs = [
            Job(p["id"], f"rollout-{i}", extract_code(completion_text(c)), p["tests"])
            for i, (p, c) in enumerate(zip(problems, completions))
        ]
        verdicts = [v.to_dict() for v in run_batch(jobs, sandbox_cfg)]
        return correct_term(completions, verdicts)

    def upfront_think(completions, **kwargs):
        return upfront_think_term(completions)

    def inline_think(completions, **kwargs):
        return inline_think_term(completions)

    return {"correct": correct, "upfront_think": upfront_think, "inline_think": inline_think}


def run_grpo(spec: dict[str, Any]) -> Any:
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    tokenizer, model = _load(spec["model_dir"])
    tokenizer.padding_side = "left"
    rows = [{"prompt": r["prompt"], "problem_json": r["problem_json"]} for r in _read_jsonl(spec["data_path"])]
    weights: dict[str, float] = spec["reward_weights"]
    functions = reward_functions(spec["sandbox"])
    names = [name for name in weights if weights[name] != 0]
    trainer_args = dict(spec["trainer_args"])
    if trainer_args.get("loss_type") == "dr_grpo":
        trainer_args.setdefault("scale_rewards", "none")
    args = GRPOConfig(
        output_dir=str(Path(spec["output_dir"]) / "trainer"),
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_vllm=False,
        top_k=0,
        reward_weights=[weights[n] for n in names],
        **_device_args(),
        **trainer_args,
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[functions[n] for n in names],
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
    )
    trainer.train()
    return trainer, tokenizer


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    import torch

    torch.set_num_threads(spec.get("threads") or torch.get_num_threads())
    runner = {"sft": run_sft, "grpo": run_grpo}[spec["stage"]]
    trainer, tokenizer = runner(spec)
    out = Path(spec["output_dir"])
    trainer.save_model(str(out / "model"))
    tokenizer.padding_side = "right"
    tokenizer.save_pretrained(str(out / "model"))
    (out / "log_history.json").write_text(json.dumps(trainer.state.log_history, indent=1))
    print(f"thinkflow: {spec['stage']} finished after {trainer.state.global_step} steps", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
