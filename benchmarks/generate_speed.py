"""Generation throughput: ``thinkflow bench generate`` (or run this file).

The evaluation's HF backend on the same HumanEval prompts twice in one process: batched (prompts
sorted by length, left-padded, ``batch_size`` at a time, each row stopping when its code block
closes) and per-sample (batch size 1, same stopping rule). Prints generated tokens/s for each, the
ratio, and how many greedy replies came out identical (bf16 batching can flip a near-tie token).
Target: batched ≥ 4× per-sample on 2 cores.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from tasks.generation import HFBackend, Sampling, chat_texts
from tasks.models import build_model, load_for_inference
from tasks.problems.bundled import load_humaneval
from tasks.recipe import PromptsConfig
from tasks.records import chat_prompt

DTYPES = {"tiny": "float32", "smollm2-135m-instruct": "bfloat16"}


def timed_run(
    backend: HFBackend, texts: list[str], sampling: Sampling, batch_size: int
) -> tuple[list[str], float, int]:
    backend.batch_size = batch_size
    started = time.perf_counter()
    replies = [r[0] for r in backend.complete(texts, sampling)]
    seconds = time.perf_counter() - started
    tokens = sum(len(backend.tokenizer(r, add_special_tokens=False)["input_ids"]) for r in replies)
    return replies, seconds, tokens


def main(
    model: str = "smollm2-135m-instruct",
    prompts: int = 32,
    batch_size: int = 16,
    max_new_tokens: int = 128,
    as_json: bool = False,
) -> dict:
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        model_dir = Path(model) if Path(model).is_dir() else build_model(model, Path(folder) / model)
        dtype = DTYPES.get(model, "float32")
        backend = HFBackend(model_dir, dtype, batch_size, loaded=load_for_inference(model_dir, dtype))
        problems = load_humaneval().problems[:prompts]
        texts = chat_texts(backend.tokenizer, [chat_prompt(p, PromptsConfig().system) for p in problems])
        sampling = Sampling(max_new_tokens=max_new_tokens)
        timed_run(backend, texts[:2], sampling, 2)  # warm-up
        batched, batched_s, batched_tokens = timed_run(backend, texts, sampling, batch_size)
        single, single_s, single_tokens = timed_run(backend, texts, sampling, 1)
    result = {
        "model": model,
        "dtype": dtype,
        "prompts": len(texts),
        "batch_size": batch_size,
        "max_new_tokens": max_new_tokens,
        "threads": torch.get_num_threads(),
        "batched_tokens_per_s": batched_tokens / batched_s,
        "per_sample_tokens_per_s": single_tokens / single_s,
        "batched_seconds": batched_s,
        "per_sample_seconds": single_s,
        "identical_replies": sum(a == b for a, b in zip(batched, single)),
    }
    result["speedup"] = result["batched_tokens_per_s"] / result["per_sample_tokens_per_s"]
    if as_json:
        print(json.dumps(result))
        return result
    table = Table(
        title=f"HF generation on {len(texts)} HumanEval prompts: {model} ({dtype}), {result['threads']} threads"
    )
    for column in ("mode", "seconds", "tokens", "tokens/s"):
        table.add_column(column, justify="right")
    table.add_row(
        f"batched ({batch_size})", f"{batched_s:.1f}", str(batched_tokens), f"{result['batched_tokens_per_s']:.1f}"
    )
    table.add_row("per-sample", f"{single_s:.1f}", str(single_tokens), f"{result['per_sample_tokens_per_s']:.1f}")
    console = Console()
    console.print(table)
    console.print(
        f"batched / per-sample: {result['speedup']:.2f}x (target >= 4x); identical greedy replies: "
        f"{result['identical_replies']}/{len(texts)}"
    )
    return result


if __name__ == "__main__":
    main()
