"""Batched HF generation on CPU (vLLM on GPU comes with issue 6).

Prompts are chat conversations. They are sorted by length so a batch pads little, left-padded,
and each row stops on its own once its ```python block closes (a reply that keeps going after the
code only costs time: 17 % of SmolLM2's HumanEval replies loop to the cap otherwise).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

_CLOSED_BLOCK = re.compile(r"```[a-zA-Z0-9]*[ \t]*\n.*?```", re.DOTALL)


def closes_code_block(text: str) -> bool:
    return _CLOSED_BLOCK.search(text) is not None


def make_stop_on_closing_fence(tokenizer, prompt_length: int):
    import torch
    from transformers import StoppingCriteria

    class StopOnClosingFence(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            generated = input_ids[:, prompt_length:]
            tails = tokenizer.batch_decode(generated[:, -6:], skip_special_tokens=True)
            done = []
            for row, tail in enumerate(tails):
                done.append("`" in tail and closes_code_block(tokenizer.decode(generated[row], skip_special_tokens=True)))
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    return StopOnClosingFence()


def generate_replies(
    model_dir: Path,
    conversations: list[list[dict[str, str]]],
    *,
    max_new_tokens: int,
    batch_size: int = 16,
    dtype: str = "float32",
    stop_on_code_end: bool = True,
    assistant_prefix: str = "",
    progress: Callable[[int], None] | None = None,
    loaded=None,
) -> list[str]:
    """Greedy replies, one per conversation, in input order."""
    greedy = {"do_sample": False, "top_k": None, "top_p": None, "temperature": None}
    replies = run_generation(model_dir, conversations, max_new_tokens=max_new_tokens, batch_size=batch_size, dtype=dtype,
                             stop_on_code_end=stop_on_code_end, assistant_prefix=assistant_prefix, progress=progress,
                             loaded=loaded, sampling=greedy)
    return [texts[0] for texts in replies]


def sample_replies(
    model_dir: Path,
    conversations: list[list[dict[str, str]]],
    *,
    samples: int,
    max_new_tokens: int,
    temperature: float = 1.0,
    seed: int = 0,
    batch_size: int = 8,
    dtype: str = "float32",
    loaded=None,
) -> list[list[str]]:
    """``samples`` sampled replies per conversation (seeded), in input order."""
    import torch

    torch.manual_seed(seed)
    sampling = {"do_sample": True, "temperature": temperature, "top_k": None, "top_p": None, "num_return_sequences": samples}
    return run_generation(model_dir, conversations, max_new_tokens=max_new_tokens, batch_size=batch_size, dtype=dtype,
                          stop_on_code_end=True, assistant_prefix="", progress=None, loaded=loaded, sampling=sampling)


def run_generation(model_dir, conversations, *, max_new_tokens, batch_size, dtype, stop_on_code_end, assistant_prefix,
                   progress, loaded, sampling) -> list[list[str]]:
    """Length-sorted, left-padded batches through ``model.generate``; replies per conversation."""
    import torch
    from transformers import StoppingCriteriaList

    from tasks.models import load_for_inference

    tokenizer, model = loaded or load_for_inference(model_dir, dtype)
    texts = [
        tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False) + assistant_prefix
        for c in conversations
    ]
    per_prompt = sampling.get("num_return_sequences", 1)
    lengths = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
    order = sorted(range(len(texts)), key=lambda i: lengths[i])
    replies: list[list[str]] = [[] for _ in texts]
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        batch = tokenizer([texts[i] for i in rows], return_tensors="pt", padding=True, add_special_tokens=False)
        prompt_length = batch["input_ids"].shape[1]
        stopping = StoppingCriteriaList([make_stop_on_closing_fence(tokenizer, prompt_length)]) if stop_on_code_end else None
        with torch.no_grad():
            out = model.generate(**batch, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                                 stopping_criteria=stopping, **sampling)
        for position, sequence in enumerate(out[:, prompt_length:]):
            replies[rows[position // per_prompt]].append(assistant_prefix + tokenizer.decode(sequence, skip_special_tokens=True))
        if progress:
            progress(len(rows))
    return replies
