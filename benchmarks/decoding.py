"""Two decoding changes, each side by side with what it replaces in one run: ``thinkflow bench decoding``.

1. Sampling: family prompts, 4 samples each at temperature 0.6 (the rejection-sampling and
   calibration stages' setting), 32 rows decoding exactly ``new_tokens`` tokens each, with HF's own
   sampling (``torch.multinomial`` over the whole vocabulary) and with ``sample_by_inverse_cdf`` (one
   uniform number per row). Prints tokens/s and the ratio: a fixed length, so the two are not
   confounded by which replies each happened to draw. Both draw from the same distribution
   (tests/unit/test_decoding.py), not the same tokens.
2. Rounds: the evaluation's workload (``eval_prompts`` family prompts, greedy, batches of 16, 192 new
   tokens at most, rows stopping at their closing fence) in one round; in rounds of 96 tokens where
   each batch's open rows go on alone (how rounds ran until 2026-12-06: the backend called once per
   batch); in rounds of 96 where the open rows of all batches are pooled and batched again
   (``decode_in_rounds``); and pooled at batch 32. Prints seconds, the ratios and how many replies
   came out identical to one round (a row continued from a fresh prefill can flip a bf16 near-tie).

The model runs as the stages run it (bf16 weights where the CPU has bf16 hardware, else float32).
Nothing is asserted: the figures go in the note and the README.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table


def timed(backend, texts: list[str], sampling, per_batch: bool = False) -> tuple[list[str], float, int]:
    """Replies, seconds and reply tokens; ``per_batch``: the backend called once per batch of the
    length-sorted prompts, so rows still open after a round go on within their own batch only."""
    started = time.perf_counter()
    if per_batch:
        lengths = [len(backend.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
        order = sorted(range(len(texts)), key=lambda i: lengths[i])
        by_row: dict[int, str] = {}
        for start in range(0, len(order), backend.batch_size):
            rows = order[start : start + backend.batch_size]
            for row, replies in zip(rows, backend.complete([texts[i] for i in rows], sampling)):
                by_row[row] = replies[0]
        replies = [by_row[i] for i in range(len(texts))]
    else:
        replies = [reply for replies in backend.complete(texts, sampling) for reply in replies]
    seconds = time.perf_counter() - started
    return replies, seconds, sum(len(backend.tokenizer(r, add_special_tokens=False)["input_ids"]) for r in replies)


def sampling_speed(loaded, texts: list[str], new_tokens: int) -> float:
    """Tokens/s of 4 samples per prompt, every row decoding exactly ``new_tokens`` tokens."""
    tokenizer, model = loaded
    encoded = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    settings = {
        "do_sample": True,
        "temperature": 0.6,
        "top_k": None,
        "top_p": 1.0,
        "num_return_sequences": 4,
        "pad_token_id": tokenizer.pad_token_id,
    }
    with torch.no_grad():
        model.generate(**encoded, max_new_tokens=4, **settings)  # warm-up
        started = time.perf_counter()
        model.generate(**encoded, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **settings)
    return 4 * len(texts) * new_tokens / (time.perf_counter() - started)


def main(
    model: str = "smollm2-135m-instruct",
    prompts: int = 8,
    new_tokens: int = 64,
    eval_prompts: int = 96,
    as_json: bool = False,
) -> dict:
    from tasks.generation import HFBackend, Sampling, chat_texts, sample_by_inverse_cdf
    from tasks.models import build_model, load_for_inference
    from tasks.precision import bf16_hardware
    from tasks.problems.function_tasks import generate_tasks
    from tasks.recipe import PromptsConfig
    from tasks.records import chat_prompt

    dtype = "bfloat16" if bf16_hardware() and model != "tiny" else "float32"
    system = PromptsConfig().system
    with tempfile.TemporaryDirectory() as folder:
        model_dir = Path(model) if Path(model).is_dir() else build_model(model, Path(folder) / "model")
        plain = load_for_inference(model_dir, dtype)
        texts = chat_texts(plain[0], [chat_prompt(p, system) for p in generate_tasks("train", 3, prompts, (1, 2))])
        speeds = {"multinomial": sampling_speed(plain, texts, new_tokens)}
        sample_by_inverse_cdf(plain[1])
        speeds["inverse CDF"] = sampling_speed(plain, texts, new_tokens)
        greedy = HFBackend(model_dir, dtype, 16, loaded=plain)
        texts = chat_texts(
            greedy.tokenizer, [chat_prompt(p, system) for p in generate_tasks("eval", 1, eval_prompts, (1, 2))]
        )
        rounds = {}
        for name, batch, size, per_batch in (
            ("one round", 16, None, False),
            ("rounds of 96, per batch", 16, 96, True),
            ("rounds of 96, pooled", 16, 96, False),
            ("batch 32, rounds of 96, pooled", 32, 96, False),
        ):
            greedy.batch_size = batch
            rounds[name] = timed(greedy, texts, Sampling(max_new_tokens=192, round_tokens=size), per_batch)
    result = {
        "model": model,
        "dtype": dtype,
        "bf16_hardware": bf16_hardware() or "none",
        "threads": torch.get_num_threads(),
        "sampled_rows": 4 * prompts,
        "new_tokens": new_tokens,
        "eval_prompts": len(texts),
        "sampling_tokens_per_s": speeds,
        "sampling_speedup": speeds["inverse CDF"] / speeds["multinomial"],
        "greedy_seconds": {name: seconds for name, (_, seconds, _) in rounds.items()},
        "identical_greedy_replies": {
            name: sum(a == b for a, b in zip(rounds["one round"][0], replies))
            for name, (replies, _, _) in rounds.items()
            if name != "one round"
        },
    }
    seconds = result["greedy_seconds"]
    result["rounds_speedup"] = seconds["one round"] / seconds["rounds of 96, per batch"]
    result["pooled_rounds_speedup"] = seconds["rounds of 96, per batch"] / seconds["rounds of 96, pooled"]
    result["batch_32_rounds_speedup"] = seconds["one round"] / seconds["batch 32, rounds of 96, pooled"]
    if as_json:
        print(json.dumps(result))
        return result
    table = Table(title=f"decoding on family prompts: {model} ({dtype}), {result['threads']} threads")
    for column in ("workload", "variant", "seconds", "tokens/s"):
        table.add_column(column, justify="right")
    for name, speed in speeds.items():
        table.add_row(
            f"{4 * prompts} rows at T 0.6, {new_tokens} tokens each",
            name,
            f"{4 * prompts * new_tokens / speed:.1f}",
            f"{speed:.1f}",
        )
    for name, (_, seconds, tokens) in rounds.items():
        table.add_row(f"{len(texts)} prompts, greedy, cap 192", name, f"{seconds:.1f}", f"{tokens / seconds:.1f}")
    console = Console(width=140)
    console.print(table)
    identical = result["identical_greedy_replies"]
    console.print(
        f"sampling inverse CDF / multinomial: {result['sampling_speedup']:.2f}x; greedy rounds per batch / one round "
        f"(batch 16): {result['rounds_speedup']:.2f}x; pooled rounds / rounds per batch: "
        f"{result['pooled_rounds_speedup']:.2f}x; batch 32 pooled / batch 16 in one round: "
        f"{result['batch_32_rounds_speedup']:.2f}x; replies identical to one round: "
        + ", ".join(f"{name} {count}/{len(texts)}" for name, count in identical.items())
    )
    return result


if __name__ == "__main__":
    main(model=sys.argv[1] if len(sys.argv) > 1 else "smollm2-135m-instruct")
