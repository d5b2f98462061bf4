"""Two decoding changes, each side by side with what it replaces in one run: ``thinkflow bench decoding``.

1. Sampling: the rejection-sampling stage's workload (family prompts, 4 replies each at temperature
   0.6, batches of 8 prompts, 128 new tokens at most, rows stopping at their closing fence) with HF's
   own sampling (``torch.multinomial`` over the whole vocabulary) and with ``sample_by_inverse_cdf``
   (one uniform number per row), and that in rounds of 64 tokens. Prints generated tokens/s and the
   ratio. All draw from the same distribution (tests/unit/test_decoding.py), not the same tokens.
2. Rounds: the evaluation's workload (``eval_prompts`` family prompts, greedy, batches of 16, 192 new tokens at most) in one round and
   in rounds of 96 tokens (rows still open go on in batches of their own). Prints seconds, the ratio
   and how many replies came out identical (a row continued from a fresh prefill can flip a bf16
   near-tie).

The model runs as the stages run it (bf16 weights where the CPU has bf16 hardware, else float32).
Nothing is asserted: the figures go in the note and the README.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table


def timed(backend, texts: list[str], sampling) -> tuple[list[str], float, int]:
    started = time.perf_counter()
    replies = [reply for replies in backend.complete(texts, sampling) for reply in replies]
    seconds = time.perf_counter() - started
    return replies, seconds, sum(len(backend.tokenizer(r, add_special_tokens=False)["input_ids"]) for r in replies)


def main(model: str = "smollm2-135m-instruct", prompts: int = 16, eval_prompts: int = 96, as_json: bool = False) -> dict:
    from tasks.generation import HFBackend, Sampling, chat_texts
    from tasks.models import build_model, load_for_inference
    from tasks.precision import bf16_hardware
    from tasks.problems.function_tasks import generate_tasks
    from tasks.recipe import PromptsConfig
    from tasks.records import chat_prompt

    dtype = "bfloat16" if bf16_hardware() and model != "tiny" else "float32"
    with tempfile.TemporaryDirectory() as folder:
        model_dir = Path(model) if Path(model).is_dir() else build_model(model, Path(folder) / "model")
        conversations = [chat_prompt(p, PromptsConfig().system) for p in generate_tasks("eval", 3, prompts, (1, 2))]
        sampled = Sampling(max_new_tokens=128, n=4, temperature=0.6, seed=0)
        runs = {}
        for name, inverse_cdf in (("multinomial", False), ("inverse CDF", True)):
            backend = HFBackend(model_dir, dtype, 8, loaded=load_for_inference(model_dir, dtype), inverse_cdf=inverse_cdf)
            texts = chat_texts(backend.tokenizer, conversations)
            timed(backend, texts[:2], Sampling(max_new_tokens=4, n=2, temperature=0.6))  # warm-up
            runs[name] = timed(backend, texts, sampled)
        runs["inverse CDF, rounds of 64"] = timed(backend, texts, replace(sampled, round_tokens=64))
        greedy = backend
        greedy.batch_size = 16
        texts = chat_texts(greedy.tokenizer, [chat_prompt(p, PromptsConfig().system) for p in generate_tasks("eval", 1, eval_prompts, (1, 2))])
        rounds = {name: timed(greedy, texts, Sampling(max_new_tokens=192, round_tokens=size))
                  for name, size in (("one round", None), ("rounds of 96", 96))}
    result = {
        "model": model, "dtype": dtype, "bf16_hardware": bf16_hardware() or "none", "threads": torch.get_num_threads(),
        "prompts": prompts, "eval_prompts": len(texts),
        "sampling_tokens_per_s": {name: tokens / seconds for name, (_, seconds, tokens) in runs.items()},
        "greedy_seconds": {name: seconds for name, (_, seconds, _) in rounds.items()},
        "identical_greedy_replies": sum(a == b for a, b in zip(rounds["one round"][0], rounds["rounds of 96"][0])),
    }
    speeds = result["sampling_tokens_per_s"]
    result["sampling_speedup"] = speeds["inverse CDF"] / speeds["multinomial"]
    result["sampling_rounds_speedup"] = speeds["inverse CDF, rounds of 64"] / speeds["inverse CDF"]
    result["rounds_speedup"] = result["greedy_seconds"]["one round"] / result["greedy_seconds"]["rounds of 96"]
    if as_json:
        print(json.dumps(result))
        return result
    table = Table(title=f"decoding on family prompts: {model} ({dtype}), {result['threads']} threads")
    for column in ("workload", "variant", "seconds", "tokens", "tokens/s"):
        table.add_column(column, justify="right")
    for name, (_, seconds, tokens) in runs.items():
        table.add_row(f"{prompts} prompts, 4 samples at T 0.6, batch 8", name, f"{seconds:.1f}", str(tokens), f"{tokens / seconds:.1f}")
    for name, (_, seconds, tokens) in rounds.items():
        table.add_row(f"{len(texts)} prompts, greedy, batch 16, cap 192", name, f"{seconds:.1f}", str(tokens), f"{tokens / seconds:.1f}")
    console = Console(width=140)
    console.print(table)
    console.print(f"sampling inverse CDF / multinomial: {result['sampling_speedup']:.2f}x, in rounds of 64 / one round: "
                  f"{result['sampling_rounds_speedup']:.2f}x; greedy rounds / one round: "
                  f"{result['rounds_speedup']:.2f}x, identical replies {result['identical_greedy_replies']}/{len(texts)}")
    return result


if __name__ == "__main__":
    main(model=sys.argv[1] if len(sys.argv) > 1 else "smollm2-135m-instruct")
