"""Text generation: batched HF ``generate`` (CPU or GPU) and vLLM (GPU, imported only when chosen).

Both take chat-templated prompt texts and a ``Sampling`` and return ``n`` completions per prompt,
in input order. HF batches are sorted by prompt length so a batch pads little, left-padded, and
each row stops on its own once its ```python block closes (a reply that keeps going after the
code only costs time: 17 % of SmolLM2's HumanEval replies loop to the cap otherwise) or at a stop
string. ``generate_with_budget`` caps the upfront thought for the thinking-budget baseline.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from tasks.progress import ProgressReport
from tasks.thinking import THINK_CLOSE, THINK_OPEN

_CLOSED_BLOCK = re.compile(r"```[a-zA-Z0-9]*[ \t]*\n.*?```", re.DOTALL)
BACKENDS = ("hf", "vllm")


def closes_code_block(text: str) -> bool:
    return _CLOSED_BLOCK.search(text) is not None


def cut_after_code_block(text: str) -> str:
    """The text up to the end of its first closed code block (all of it when none closes)."""
    match = _CLOSED_BLOCK.search(text)
    return text if match is None else text[: match.end()]


@dataclass(frozen=True)
class Sampling:
    max_new_tokens: int
    n: int = 1  # completions per prompt
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    seed: int = 0
    stop: tuple[str, ...] = field(default_factory=tuple)  # stop strings, kept in the output
    stop_on_code_end: bool = True
    round_tokens: int | None = None  # HF: decode in rounds of this many tokens, carrying only the unfinished rows on

    def __post_init__(self):
        if self.temperature == 0.0 and self.n > 1:
            raise ValueError(f"greedy decoding (temperature 0) gives one completion per prompt, not n={self.n}")


def make_stop_on_closing_fence(tokenizer, prompt_length: int):
    import torch
    from transformers import StoppingCriteria

    class StopOnClosingFence(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            generated = input_ids[:, prompt_length:]
            tails = tokenizer.batch_decode(generated[:, -6:], skip_special_tokens=True)
            done = []
            for row, tail in enumerate(tails):
                done.append(
                    "`" in tail and closes_code_block(tokenizer.decode(generated[row], skip_special_tokens=True))
                )
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    return StopOnClosingFence()


def make_end_after_closing_fence(tokenizer, prompt_length: int, eos_token_id: int):
    """A logits processor that makes EOS the only choice for a row whose first code block has closed:
    the rollout ends as a finished reply (not a truncated one) right after its code."""
    from transformers import LogitsProcessor

    class EndAfterClosingFence(LogitsProcessor):
        def __call__(self, input_ids, scores):
            generated = input_ids[:, prompt_length:]
            if generated.shape[1] == 0:
                return scores
            tails = tokenizer.batch_decode(generated[:, -6:], skip_special_tokens=True)
            for row, tail in enumerate(tails):
                if "`" in tail and closes_code_block(tokenizer.decode(generated[row], skip_special_tokens=True)):
                    scores[row, :] = float("-inf")
                    scores[row, eos_token_id] = 0.0
            return scores

    return EndAfterClosingFence()


def end_generations_at_code_end(model, tokenizer) -> None:
    """Every later ``model.generate`` call (GRPO's rollouts) ends each row with EOS once its first
    code block closes; TRL's own length and truncation accounting then sees a finished reply."""
    from transformers import LogitsProcessorList

    original = model.generate
    eos = tokenizer.eos_token_id

    def generate(*args, **kwargs):
        prompt_ids = kwargs.get("input_ids", args[0] if args else None)
        processors = LogitsProcessorList(kwargs.pop("logits_processor", None) or [])
        processors.append(make_end_after_closing_fence(tokenizer, prompt_ids.shape[1], eos))
        return original(*args, logits_processor=processors, **kwargs)

    model.generate = generate


def make_inverse_cdf_sampler(temperature: float):
    """A logits processor that samples the next token from softmax(scores / temperature) with one
    uniform number per row (inverse CDF) and leaves only that token's score finite, so greedy
    decoding picks it: the same distribution as HF's sampling, without ``torch.multinomial``."""
    import torch
    from transformers import LogitsProcessor

    class InverseCdfSampler(LogitsProcessor):
        def __call__(self, input_ids, scores):
            cdf = torch.softmax(scores.float() / temperature, dim=-1).cumsum(dim=-1)
            u = torch.rand(cdf.shape[0], 1, device=cdf.device, dtype=cdf.dtype) * cdf[:, -1:]
            tokens = torch.searchsorted(cdf, u, right=True).clamp_(max=cdf.shape[1] - 1)
            return torch.full_like(scores, float("-inf")).scatter_(1, tokens, 0.0)

    return InverseCdfSampler()


def sample_by_inverse_cdf(model) -> None:
    """Every later ``model.generate`` call that samples from the whole vocabulary (top_k 0 or None,
    top_p 1) draws its tokens with ``make_inverse_cdf_sampler`` under greedy decoding. On this CPU
    ``torch.multinomial`` drew one token per row with a random number for each of SmolLM2's 49,152
    vocabulary entries: 20 % of the rejection-sampling stage's decoding time (py-spy, 2026-12-06).
    Other decoding settings go to HF's own sampling unchanged."""
    import copy

    import torch
    from transformers import LogitsProcessorList

    if getattr(model, "_samples_by_inverse_cdf", False):
        return
    inner = model.generate

    def generate(*args, **kwargs):
        config = copy.deepcopy(kwargs.pop("generation_config", None) or model.generation_config)
        # every generation setting goes into the config (transformers deprecates a config passed with settings
        # beside it); what is left are the model's inputs and generate's own arguments (stopping criteria, ...)
        kwargs = config.update(**kwargs)
        copies = config.num_return_sequences or 1
        whole_vocabulary = (
            config.do_sample
            and not config.top_k
            and config.top_p in (None, 1.0)
            and config.min_p is None
            and config.typical_p in (None, 1.0)
            and (config.num_beams or 1) == 1
        )
        other_rows = [
            key
            for key, value in kwargs.items()
            if key not in ("input_ids", "attention_mask") and torch.is_tensor(value)
        ]
        if args or not whole_vocabulary or (copies > 1 and other_rows):
            return inner(*args, generation_config=config, **kwargs)
        temperature = config.temperature or 1.0
        config.update(do_sample=False, temperature=None, top_k=None, top_p=None, num_return_sequences=1)
        for key in ("input_ids", "attention_mask"):
            if kwargs.get(key) is not None:
                kwargs[key] = kwargs[key].repeat_interleave(copies, dim=0)
        processors = LogitsProcessorList(kwargs.pop("logits_processor", None) or [])
        processors.append(make_inverse_cdf_sampler(temperature))
        return inner(generation_config=config, logits_processor=processors, **kwargs)

    model.generate = generate
    model._samples_by_inverse_cdf = True


def decode_in_rounds(
    generate,
    sequences: list[list[int]],
    *,
    rows_per_batch: int,
    max_new_tokens: int,
    round_tokens: int,
    finished,
    pad_token_id: int,
    stopping_for=None,
    on_finished=None,
    device=None,
    **kwargs,
) -> list[list[int]]:
    """Decode every row of ``sequences`` (prompt token ids, unpadded; a prompt sampled n times is
    there n times) in rounds of ``round_tokens`` new tokens. A round runs the open rows in
    left-padded batches of ``rows_per_batch``; after it, the rows ``finished`` says are still open
    (given a row's new token ids) are pooled across all batches, sorted by length and batched again,
    so a few long replies share a batch instead of each holding a batch of its own: one reply of 32
    running to the cap held its whole batch for every step (8 of 200 family replies do, one in most
    batches). Every open row has decoded the same number of tokens, so a batch's replies start at one
    column: ``stopping_for(reply_start, label)`` gives the batch's stopping criteria.
    ``on_finished(count)`` hears how many rows each batch ended. Returns each row's new token ids;
    a row that ended early is padded with ``pad_token_id`` to the end of its batch."""
    import torch

    new_tokens: list[list[int]] = [[] for _ in sequences]
    open_rows, decoded, round_number = list(range(len(sequences))), 0, 0
    while open_rows:
        step = min(round_tokens, max_new_tokens - decoded)
        round_number += 1
        if decoded:
            open_rows.sort(key=lambda row: len(sequences[row]))
        batches = [open_rows[i : i + rows_per_batch] for i in range(0, len(open_rows), rows_per_batch)]
        still_open = []
        for number, rows in enumerate(batches, start=1):
            texts = [sequences[row] + new_tokens[row] for row in rows]
            width = max(len(t) for t in texts)
            ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for i, tokens in enumerate(texts):
                ids[i, width - len(tokens) :] = torch.tensor(tokens, dtype=torch.long)
                mask[i, width - len(tokens) :] = 1
            label = f"{number}/{len(batches)}" + (f" (round {round_number})" if decoded else "")
            extra = {"stopping_criteria": stopping_for(width - decoded, label)} if stopping_for else {}
            out = generate(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                max_new_tokens=step,
                pad_token_id=pad_token_id,
                **extra,
                **kwargs,
            )
            grown = out[:, width:]
            ended = 0
            for i, row in enumerate(rows):
                new_tokens[row].extend(grown[i].tolist())
                if (
                    grown.shape[1] == step
                    and decoded + step < max_new_tokens
                    and not finished(torch.tensor(new_tokens[row]))
                ):
                    still_open.append(row)
                else:
                    ended += 1
            if on_finished:
                on_finished(ended)
        open_rows, decoded = still_open, decoded + step
    return new_tokens


def make_decoding_heartbeat(prompt_length: int, max_new_tokens: int, batch: str, progress):
    """A stopping criterion that never stops: at each decoding step it lets a ProgressReport say
    how far the running batch is, so a batch that decodes for minutes is not a silent one."""
    import torch
    from transformers import StoppingCriteria

    class DecodingHeartbeat(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            progress.tick(f"batch {batch} at token {input_ids.shape[1] - prompt_length}/{max_new_tokens}")
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    return DecodingHeartbeat()


class HFBackend:
    """``model.generate`` over length-sorted, left-padded batches of ``batch_size`` prompts; sampling
    draws by inverse CDF (``sample_by_inverse_cdf``) unless ``inverse_cdf`` is false."""

    def __init__(
        self, model_dir: Path, dtype: str = "float32", batch_size: int = 16, loaded=None, inverse_cdf: bool = True
    ):
        from tasks.models import load_for_inference

        self.batch_size = batch_size
        self.tokenizer, self.model = loaded or load_for_inference(model_dir, dtype)
        if inverse_cdf:
            sample_by_inverse_cdf(self.model)

    def complete(
        self, texts: list[str], sampling: Sampling, progress: Callable[[int], None] | None = None
    ) -> list[list[str]]:
        import torch

        tokenizer = self.tokenizer
        if sampling.temperature > 0:
            torch.manual_seed(sampling.seed)
            decoding = {
                "do_sample": True,
                "temperature": sampling.temperature,
                "top_p": sampling.top_p,
                "top_k": None,
                "num_return_sequences": sampling.n,
            }
        else:
            decoding = {"do_sample": False, "top_k": None, "top_p": None, "temperature": None}
        if sampling.stop:
            decoding.update(stop_strings=list(sampling.stop), tokenizer=tokenizer)
        progress = progress or ProgressReport("generating", len(texts) * sampling.n, "replies")
        encoded = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))
        replies: list[list[str]] = [[] for _ in texts]
        if sampling.round_tokens and sampling.round_tokens < sampling.max_new_tokens:
            decoding.pop("num_return_sequences", None)
            rows = [i for i in order for _ in range(sampling.n)]  # HF's own expansion for n samples

            def stopping_for(reply_start: int, batch: str):
                return self._stopping(sampling, reply_start, batch, progress)

            with torch.no_grad():
                new_tokens = decode_in_rounds(
                    self.model.generate,
                    [encoded[i] for i in rows],
                    rows_per_batch=self.batch_size * sampling.n,
                    max_new_tokens=sampling.max_new_tokens,
                    round_tokens=sampling.round_tokens,
                    finished=self._reply_finished(sampling),
                    pad_token_id=tokenizer.pad_token_id,
                    stopping_for=stopping_for,
                    on_finished=progress,
                    device=self.model.device,
                    **decoding,
                )
            for row, tokens in zip(rows, new_tokens):
                replies[row].append(tokenizer.decode(tokens, skip_special_tokens=True))
            return replies
        batches = -(-len(order) // self.batch_size)
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            batch = tokenizer([texts[i] for i in rows], return_tensors="pt", padding=True, add_special_tokens=False)
            prompt_length = batch["input_ids"].shape[1]
            stopping = self._stopping(sampling, prompt_length, f"{start // self.batch_size + 1}/{batches}", progress)
            batch = batch.to(self.model.device)
            with torch.no_grad():
                out = self.model.generate(
                    **batch,
                    max_new_tokens=sampling.max_new_tokens,
                    pad_token_id=tokenizer.pad_token_id,
                    stopping_criteria=stopping,
                    **decoding,
                )
            for position, sequence in enumerate(out[:, prompt_length:]):
                replies[rows[position // sampling.n]].append(tokenizer.decode(sequence, skip_special_tokens=True))
            progress(len(rows) * sampling.n)
        return replies

    def _stopping(self, sampling: Sampling, reply_start: int, batch: str, progress):
        from transformers import StoppingCriteriaList

        stopping = StoppingCriteriaList(
            [make_stop_on_closing_fence(self.tokenizer, reply_start)] if sampling.stop_on_code_end else []
        )
        if hasattr(progress, "tick"):
            stopping.append(make_decoding_heartbeat(reply_start, sampling.max_new_tokens, batch, progress))
        return stopping

    def _reply_finished(self, sampling: Sampling):
        """Whether a row's new tokens end its reply: an end token (the padding of a row already
        done included), a closed code block where replies stop there, or a stop string."""
        tokenizer = self.tokenizer
        eos = self.model.generation_config.eos_token_id
        ends = {tokenizer.pad_token_id, tokenizer.eos_token_id, *(eos if isinstance(eos, list) else [eos])} - {None}

        def finished(tokens) -> bool:
            if any(int(t) in ends for t in tokens):
                return True
            text = tokenizer.decode(tokens, skip_special_tokens=True)
            return (sampling.stop_on_code_end and closes_code_block(text)) or any(
                stop in text for stop in sampling.stop
            )

        return finished


class VLLMBackend:
    """vLLM's offline engine on a GPU; ``pip install thinkflow[gpu]``."""

    def __init__(self, model_dir: Path, dtype: str = "bfloat16", gpu_memory_utilization: float = 0.85):
        try:
            from vllm import LLM
        except ImportError as exc:
            raise RuntimeError(
                "evaluate.backend is 'vllm' but vLLM is not installed: pip install 'thinkflow[gpu]' "
                "on a machine with a GPU, or use backend: hf"
            ) from exc
        self.llm = LLM(model=str(model_dir), dtype=dtype, gpu_memory_utilization=gpu_memory_utilization)
        self.tokenizer = self.llm.get_tokenizer()

    def complete(
        self, texts: list[str], sampling: Sampling, progress: Callable[[int], None] | None = None
    ) -> list[list[str]]:
        from vllm import SamplingParams

        params = SamplingParams(
            n=sampling.n,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            seed=sampling.seed,
            max_tokens=sampling.max_new_tokens,
            stop=list(sampling.stop) or None,
            include_stop_str_in_output=True,
        )
        progress = progress or ProgressReport("generating (vLLM)", len(texts) * sampling.n, "replies")
        outputs = self.llm.generate(texts, params, use_tqdm=False)
        replies = [
            [cut_after_code_block(c.text) if sampling.stop_on_code_end else c.text for c in out.outputs]
            for out in outputs
        ]
        progress(len(texts) * sampling.n)
        return replies


def open_backend(name: str, model_dir: Path, dtype: str, batch_size: int = 16):
    if name == "vllm":
        return VLLMBackend(model_dir, dtype)
    if name == "hf":
        return HFBackend(model_dir, dtype, batch_size)
    raise ValueError(f"unknown generation backend {name!r}; known: {', '.join(BACKENDS)}")


def generate_with_budget(
    backend, texts: list[str], sampling: Sampling, budget: int, prefill: str = ""
) -> list[list[str]]:
    """Thinking-budget decoding: the upfront thought gets at most ``budget`` tokens; one still open
    then (counting the prefill at the end of each text) is closed with ``</think>`` and the answer
    is generated after it in the remaining tokens. A reply that opens no thought is continued as is."""

    def still_open(head: str) -> bool:
        started = (prefill + head).lstrip()
        return started.startswith(THINK_OPEN) and THINK_CLOSE not in started

    thinking = backend.complete(
        texts, replace(sampling, max_new_tokens=budget, stop=(THINK_CLOSE,), stop_on_code_end=False)
    )
    heads = [head + f"\n{THINK_CLOSE}\n" if still_open(head) else head for heads in thinking for head in heads]
    prompts = [text for text in texts for _ in range(sampling.n)]
    rest = backend.complete(
        [p + h for p, h in zip(prompts, heads)],
        replace(sampling, n=1, max_new_tokens=max(1, sampling.max_new_tokens - budget)),
    )
    flat = [h + r[0] for h, r in zip(heads, rest)]
    return [flat[i * sampling.n : (i + 1) * sampling.n] for i in range(len(texts))]


def chat_texts(tokenizer, conversations: list[list[dict[str, str]]], prefixes: list[str] | str = "") -> list[str]:
    """Chat-templated prompts ready for the assistant's turn, each followed by its prefill."""
    if isinstance(prefixes, str):
        prefixes = [prefixes] * len(conversations)
    return [
        tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False) + prefix
        for c, prefix in zip(conversations, prefixes)
    ]


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
    """Greedy replies on HF, one per conversation, in input order (the prefill included)."""
    backend = HFBackend(model_dir, dtype, batch_size, loaded=loaded)
    texts = chat_texts(backend.tokenizer, conversations, assistant_prefix)
    replies = backend.complete(
        texts, Sampling(max_new_tokens=max_new_tokens, stop_on_code_end=stop_on_code_end), progress
    )
    return [assistant_prefix + r[0] for r in replies]


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
    """``samples`` sampled replies per conversation on HF (seeded), in input order."""
    backend = HFBackend(model_dir, dtype, batch_size, loaded=loaded)
    sampling = Sampling(max_new_tokens=max_new_tokens, n=samples, temperature=temperature, seed=seed)
    return backend.complete(chat_texts(backend.tokenizer, conversations), sampling)
