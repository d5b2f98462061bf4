"""Annotators: the model that writes thoughts for the cold-start and mid-training sets.

One interface, ``annotator.complete(conversations, max_new_tokens) -> replies`` (one reply per
conversation, in order) and ``annotator.sample(conversations, k, max_new_tokens, temperature,
seed) -> k replies per conversation`` (rejection sampling), three kinds chosen in the recipe
(``AnnotatorConfig``):

* ``hf``: a local transformers model, batched greedy generation (CPU or GPU).
* ``openai``: any OpenAI-compatible chat endpoint (a vLLM server, a provider,
  ``thinkflow serve-annotator``). Requests run ``concurrency`` at a time; 429, 5xx, timeouts and
  dropped connections are retried with exponential backoff (``Retry-After`` honoured) up to
  ``max_retries``; any other error stops the stage naming the request. Every reply is cached on
  disk by the hash of (model, messages, max tokens, temperature, and for samples the seed), so a
  re-run costs nothing.
  Replies come back in input order, exactly one per request.
* ``vllm``: vLLM's offline engine (GPU only; imported when used).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.progress import ProgressReport
from tasks.recipe import AnnotatorConfig

Conversation = list[dict[str, str]]
RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class AnnotatorError(RuntimeError):
    pass


@dataclass
class CallCounter:
    """How many completions an annotator was asked for, served from cache, and retried; and why attempts failed
    (``timeouts``: no reply in time or the connection broke; ``server_errors``: a retryable HTTP status)."""

    requested: int = 0
    cached: int = 0
    retries: int = 0
    timeouts: int = 0
    server_errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, name: str, n: int = 1) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + n)


class HFAnnotator:
    def __init__(self, model_dir: Path, cfg: AnnotatorConfig, dtype: str = "float32", loaded=None):
        from tasks.models import load_for_inference

        self.model_dir, self.cfg, self.dtype = model_dir, cfg, dtype
        self.loaded = loaded or load_for_inference(model_dir, dtype)
        self.calls = CallCounter()

    def complete(self, conversations: list[Conversation], max_new_tokens: int) -> list[str]:
        from tasks.generation import generate_replies

        self.calls.add("requested", len(conversations))
        return generate_replies(
            self.model_dir,
            conversations,
            max_new_tokens=max_new_tokens,
            batch_size=self.cfg.batch_size,
            dtype=self.dtype,
            stop_on_code_end=False,
            loaded=self.loaded,
        )

    def sample(
        self, conversations: list[Conversation], k: int, max_new_tokens: int, temperature: float, seed: int
    ) -> list[list[str]]:
        from tasks.generation import sample_replies

        self.calls.add("requested", len(conversations) * k)
        return sample_replies(
            self.model_dir,
            conversations,
            samples=k,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            seed=seed,
            batch_size=self.cfg.batch_size,
            dtype=self.dtype,
            loaded=self.loaded,
        )


def request_key(
    model: str, messages: Conversation, max_tokens: int, temperature: float, seed: int | None = None
) -> str:
    request = {"model": model, "messages": messages, "max_tokens": max_tokens, "temperature": temperature}
    if seed is not None:
        request["seed"] = seed
    payload = json.dumps(request, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


class ReplyCache:
    """One JSON file per request hash; written atomically, so a killed run leaves no half entry."""

    def __init__(self, folder: Path):
        self.folder = folder

    def path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> str | None:
        try:
            return json.loads(self.path(key).read_text())["reply"]
        except (OSError, ValueError, KeyError):
            return None

    def put(self, key: str, reply: str) -> None:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        temporary.write_text(json.dumps({"reply": reply}))
        temporary.replace(target)


class OpenAIAnnotator:
    def __init__(
        self, cfg: AnnotatorConfig, cache_folder: Path | None = None, sleep: Callable[[float], None] = time.sleep
    ):
        import httpx

        self.cfg = cfg
        key = os.environ.get(cfg.api_key_env, "")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.client = httpx.Client(
            base_url=cfg.base_url.rstrip("/"),
            headers=headers,
            timeout=cfg.timeout_s,
            limits=httpx.Limits(max_connections=cfg.concurrency, max_keepalive_connections=cfg.concurrency),
        )
        self.cache = ReplyCache(cache_folder) if cfg.cache and cache_folder else None
        self.sleep = sleep
        self.calls = CallCounter()

    def complete(self, conversations: list[Conversation], max_new_tokens: int) -> list[str]:
        if not conversations:
            return []
        progress = ProgressReport("annotator requests", len(conversations), "replies")

        def one(conversation: Conversation) -> str:
            reply = self.complete_one(conversation, max_new_tokens)
            progress(1)
            return reply

        with ThreadPoolExecutor(self.cfg.concurrency, thread_name_prefix="annotator") as pool:
            return list(pool.map(one, conversations))

    def sample(
        self, conversations: list[Conversation], k: int, max_new_tokens: int, temperature: float, seed: int
    ) -> list[list[str]]:
        """``k`` requests per conversation, each with its own seed (``seed + j``), so each is cached
        on its own; a server that ignores seeds still samples at ``temperature``."""
        requests = [(c, seed + j) for c in conversations for j in range(k)]
        progress = ProgressReport("annotator samples", len(requests), "replies")

        def one(request: tuple[Conversation, int]) -> str:
            reply = self.complete_one(request[0], max_new_tokens, temperature, request[1])
            progress(1)
            return reply

        with ThreadPoolExecutor(self.cfg.concurrency, thread_name_prefix="annotator") as pool:
            replies = list(pool.map(one, requests))
        return [replies[i * k : (i + 1) * k] for i in range(len(conversations))]

    def complete_one(
        self, messages: Conversation, max_new_tokens: int, temperature: float | None = None, seed: int | None = None
    ) -> str:
        temperature = self.cfg.temperature if temperature is None else temperature
        key = request_key(self.cfg.model, messages, max_new_tokens, temperature, seed)
        if self.cache and (reply := self.cache.get(key)) is not None:
            self.calls.add("cached")
            return reply
        body = {
            "model": self.cfg.model,
            "messages": messages,
            "max_tokens": max_new_tokens,
            "temperature": temperature,
            **({"seed": seed} if seed is not None else {}),
        }
        reply = self.post_with_retries(body, key)
        if self.cache:
            self.cache.put(key, reply)
        return reply

    def post_with_retries(self, body: dict[str, Any], key: str) -> str:
        import httpx

        problem, retry_after = "", None
        for attempt in range(self.cfg.max_retries + 1):
            if attempt:
                self.calls.add("retries")
                self.sleep(self.backoff(attempt, retry_after))
            self.calls.add("requested")
            try:
                response = self.client.post("/chat/completions", json=body)
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                problem, retry_after = f"{type(exc).__name__}: {exc}", None
                self.calls.add("timeouts")
                continue
            if response.status_code in RETRYABLE_STATUS:
                self.calls.add("server_errors")
                problem, retry_after = f"HTTP {response.status_code}", response.headers.get("retry-after")
                continue
            if response.status_code != 200:
                raise AnnotatorError(
                    f"{self.cfg.base_url}: request {key[:12]} refused with HTTP {response.status_code}: "
                    f"{response.text[:300]}"
                )
            try:
                return response.json()["choices"][0]["message"]["content"] or ""
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                raise AnnotatorError(
                    f"{self.cfg.base_url}: request {key[:12]}: not a chat completion: {response.text[:300]}"
                ) from exc
        raise AnnotatorError(
            f"{self.cfg.base_url}: request {key[:12]} failed {self.cfg.max_retries + 1} times; last: {problem}"
        )

    def backoff(self, attempt: int, retry_after: str | None) -> float:
        """Exponential with jitter; a server's Retry-After (seconds) wins, up to a minute."""
        if retry_after:
            try:
                return min(float(retry_after), 60.0)
            except ValueError:
                pass
        return self.cfg.backoff_s * (2 ** (attempt - 1)) * (0.5 + random.random())

    def close(self) -> None:
        self.client.close()


class VLLMAnnotator:
    def __init__(self, model_dir: Path, cfg: AnnotatorConfig):
        try:
            from vllm import LLM, SamplingParams
        except ImportError as exc:
            raise AnnotatorError("the vllm annotator needs vLLM and a GPU: pip install 'thinkflow[gpu]'") from exc
        self.engine, self.cfg, self.params_type = LLM(model=str(model_dir)), cfg, SamplingParams
        self.calls = CallCounter()

    def complete(self, conversations: list[Conversation], max_new_tokens: int) -> list[str]:
        self.calls.add("requested", len(conversations))
        params = self.params_type(max_tokens=max_new_tokens, temperature=self.cfg.temperature)
        return [output.outputs[0].text for output in self.engine.chat(conversations, params)]

    def sample(
        self, conversations: list[Conversation], k: int, max_new_tokens: int, temperature: float, seed: int
    ) -> list[list[str]]:
        self.calls.add("requested", len(conversations) * k)
        params = self.params_type(n=k, max_tokens=max_new_tokens, temperature=temperature, seed=seed)
        return [[choice.text for choice in output.outputs] for output in self.engine.chat(conversations, params)]


def make_annotator(
    cfg: AnnotatorConfig, model_dir: Path | None, cache_folder: Path | None, dtype: str = "float32", loaded=None
):
    """The configured annotator; ``model_dir`` is the local model for ``hf`` and ``vllm``."""
    if cfg.kind == "openai":
        return OpenAIAnnotator(cfg, cache_folder)
    if model_dir is None:
        raise AnnotatorError(f"the {cfg.kind} annotator needs a local model")
    if cfg.kind == "vllm":
        return VLLMAnnotator(model_dir, cfg)
    return HFAnnotator(model_dir, cfg, dtype, loaded)
