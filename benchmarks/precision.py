"""float32 vs bf16, side by side in one run: ``thinkflow bench precision`` (or run this file).

1. Decoding: the same family prompts, greedy, a fixed number of new tokens per row, batch 32, with
   float32 weights, bf16 weights (what generation and evaluation load under ``torch_dtype: bfloat16``),
   float32 weights under bf16 autocast (what GRPO's rollouts run), and bf16 weights with a static
   KV cache. Prints tokens/s and the ratio to float32.
2. RL: seconds per GRPO optimizer step of our stage (``accelerate launch`` of the training worker,
   sandbox reward, ``steps_per_generation`` updates per generation batch) with ``rl.bf16`` false and
   true, on the same prompts and settings. Prints s/step and the ratio.

bf16 pays only with hardware for it (AMX-BF16 tiles on the CPU, or a GPU); the header says which
this machine has. Nothing here is asserted: the figures go in the note and the README.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table


def decode_speed(model_dir: Path, prompts: list[str], new_tokens: int, batch: int) -> dict[str, float]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "left"
    encoded = tokenizer(prompts[:batch], return_tensors="pt", padding=True, add_special_tokens=False)
    variants = {
        "float32": (torch.float32, False, {}),
        "bf16 weights": (torch.bfloat16, False, {}),
        "float32 + bf16 autocast": (torch.float32, True, {}),
        "bf16 weights + static cache": (torch.bfloat16, False, {"cache_implementation": "static"}),
    }
    speeds = {}
    for name, (dtype, autocast, extra) in variants.items():
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).eval()
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            model.generate(
                **encoded, max_new_tokens=4, do_sample=False, pad_token_id=tokenizer.pad_token_id, **extra
            )  # warm-up
            started = time.perf_counter()
            model.generate(
                **encoded,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                **extra,
            )
            speeds[name] = encoded["input_ids"].shape[0] * new_tokens / (time.perf_counter() - started)
        del model
    return speeds


def rl_step_seconds(model_dir: Path, problems: list[dict], steps: int, folder: Path) -> dict[str, float]:
    from prefect.logging import disable_run_logger

    from storage import ArtifactStore
    from tasks.recipe import PromptsConfig, RLSection
    from tasks.records import chat_prompt, write_jsonl
    from tasks.stage_run import StageRun
    from tasks.training.launch import run_worker

    rows = [
        {"problem_id": p["id"], "prompt": chat_prompt(p, PromptsConfig().system), "problem_json": json.dumps(p)}
        for p in problems
    ]
    write_jsonl(folder / "rl.jsonl", rows)
    store = ArtifactStore()
    model_id = store.commit(
        model_dir, kind="checkpoint", name="bench-model", parents=[], config={}, metadata={}
    ).artifact_id
    seconds = {}
    with disable_run_logger():
        for bf16 in (False, True):
            section = RLSection(
                max_steps=steps,
                num_generations=8,
                per_device_train_batch_size=32,
                steps_per_generation=2,
                max_completion_length=128,
                temperature=0.6,
                loss_type="dapo",
                scale_rewards="group",
                bf16=bf16,
            )
            with StageRun(
                "bench_precision",
                inputs={"model": model_id},
                params={"bf16": bf16, "n": time.monotonic_ns()},
                code_module="tasks.training.rl",
            ) as run:
                spec = {
                    "stage": "grpo",
                    "kind": "grpo",
                    "model_dir": str(run.input_path("model")),
                    "data_path": str(folder / "rl.jsonl"),
                    "reward": section.reward.to_json(),
                    "sandbox": {"workers": 2, "timeout_s": 6},
                }
                history = run_worker(run, spec, section)[1]
            final = next(entry for entry in reversed(history) if "train_runtime" in entry)
            seconds["bf16" if bf16 else "float32"] = final["train_runtime"] / steps
    return seconds


def main(
    model: str = "smollm2-135m-instruct",
    new_tokens: int = 96,
    batch: int = 32,
    rl_steps: int = 4,
    as_json: bool = False,
) -> dict:
    from tasks.models import build_model
    from tasks.precision import bf16_hardware
    from tasks.problems.function_tasks import generate_tasks
    from tasks.recipe import PromptsConfig
    from tasks.records import chat_prompt

    problems = generate_tasks("train", 7, 64, (1, 2))
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        os.environ["THINKFLOW_HOME"] = str(folder / "home")
        model_dir = build_model(model, folder / "model")
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        prompts = [
            tokenizer.apply_chat_template(
                chat_prompt(p, PromptsConfig().system), add_generation_prompt=True, tokenize=False
            )
            for p in problems
        ]
        results = {
            "hardware": bf16_hardware() or "none (bf16 would run slower here)",
            "decode_tokens_per_second": decode_speed(model_dir, prompts, new_tokens, batch),
            "rl_seconds_per_step": rl_step_seconds(model_dir, problems[:32], rl_steps, folder),
        }
    decode, rl = results["decode_tokens_per_second"], results["rl_seconds_per_step"]
    results["ratios"] = {
        **{f"decode {k} / float32": v / decode["float32"] for k, v in decode.items() if k != "float32"},
        "rl step float32 s / bf16 s": rl["float32"] / rl["bf16"],
    }
    if as_json:
        print(json.dumps(results, indent=1))
        return results
    table = Table(title=f"precision on {model}; bf16 hardware: {results['hardware']}")
    for column in ("measure", "value", "ratio to float32"):
        table.add_column(column)
    for name, value in decode.items():
        table.add_row(
            f"decode {name} (batch {batch}, {new_tokens} new tokens), tokens/s",
            f"{value:.0f}",
            f"{value / decode['float32']:.2f}x",
        )
    for name, value in rl.items():
        table.add_row(
            f"GRPO step ({name}, 8 prompts x 8 rollouts, 2 updates/batch), s/step",
            f"{value:.1f}",
            f"{rl['float32'] / value:.2f}x",
        )
    Console(width=160).print(table)
    return results


if __name__ == "__main__":
    main(model=sys.argv[1] if len(sys.argv) > 1 else "smollm2-135m-instruct")
