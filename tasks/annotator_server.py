"""``thinkflow serve-annotator``: a local model behind an OpenAI-compatible HTTP endpoint.

Serves ``POST /v1/chat/completions`` and ``GET /v1/models`` on 127.0.0.1 from a transformers model
(the tiny test model, SmolLM2, any local folder), so the ``openai`` annotator can be run and
measured end to end with no remote service. Concurrent requests are gathered into batches (up to
``max_batch``) for one ``generate`` call, the way a serving engine would; a request with a temperature above 0 is sampled on
its own, seeded by its ``seed``. ``GET /stats`` reports what was received and served.

Faults can be injected to test clients: ``fail_every=N`` answers every Nth request with HTTP 500,
``stall_every=N`` holds every Nth request ``stall_s`` seconds before answering (longer than a
client's timeout makes it a timeout), ``stall_after=N`` holds every request after the Nth until
the server stops.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Faults:
    fail_every: int = 0
    stall_every: int = 0
    stall_s: float = 30.0
    stall_after: int = 0


@dataclass
class Stats:
    received: int = 0
    served: int = 0
    failed: int = 0
    stalled: int = 0
    batches: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, name: str) -> int:
        with self.lock:
            setattr(self, name, getattr(self, name) + 1)
            return getattr(self, name)

    def as_dict(self) -> dict[str, int]:
        with self.lock:
            return {k: getattr(self, k) for k in ("received", "served", "failed", "stalled", "batches")}


class BatchingGenerator:
    """One thread runs the model; requests wait in a queue and are served in batches."""

    def __init__(self, model_dir: Path, dtype: str, max_batch: int, stats: Stats):
        from tasks.models import load_for_inference

        self.model_dir, self.dtype, self.max_batch, self.stats = model_dir, dtype, max_batch, stats
        self.loaded = load_for_inference(model_dir, dtype)
        self.pending: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self.loop, daemon=True, name="annotator-model")
        self.thread.start()

    def submit(self, messages: list[dict], max_tokens: int, temperature: float = 0.0, seed: int = 0) -> Future:
        future: Future = Future()
        self.pending.put((messages, (max_tokens, temperature, seed), future))
        return future

    def answer(self, conversations: list[list[dict]], settings: tuple[int, float, int]) -> list[str]:
        """Greedy replies for a batch; a sampled request (temperature > 0) is answered on its own,
        seeded, so the same (messages, seed) gives the same reply whatever else was queued."""
        from tasks.generation import generate_replies, sample_replies

        max_tokens, temperature, seed = settings
        if temperature > 0:
            return [
                sample_replies(
                    self.model_dir,
                    conversations,
                    samples=1,
                    max_new_tokens=max_tokens,
                    temperature=temperature,
                    seed=seed,
                    loaded=self.loaded,
                )[0][0]
            ]
        return generate_replies(
            self.model_dir,
            conversations,
            max_new_tokens=max_tokens,
            batch_size=len(conversations),
            stop_on_code_end=False,
            loaded=self.loaded,
        )

    def loop(self) -> None:
        while True:
            batch = [self.pending.get()]
            deadline = time.monotonic() + 0.005  # let requests that arrive together share a batch
            while len(batch) < self.max_batch:
                try:
                    batch.append(self.pending.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
            self.stats.count("batches")
            groups: dict[tuple, list] = {}
            for number, item in enumerate(batch):
                settings = item[1]
                groups.setdefault(settings if settings[1] == 0 else (*settings, number), []).append(item)
            for items in groups.values():
                try:
                    replies = self.answer([m for m, _, _ in items], items[0][1])
                except Exception as exc:  # noqa: BLE001 - each waiting request gets the error
                    for _, _, future in items:
                        future.set_exception(exc)
                    continue
                for (_, _, future), reply in zip(items, replies):
                    future.set_result(reply)


class AnnotatorServer:
    """``with AnnotatorServer(model_dir) as server: server.url`` (or ``serve_forever()``)."""

    def __init__(
        self,
        model_dir: Path,
        model_name: str = "local",
        host: str = "127.0.0.1",
        port: int = 0,
        faults: Faults | None = None,
        max_batch: int = 32,
        dtype: str = "float32",
    ):
        self.model_name, self.faults, self.stats = model_name, faults or Faults(), Stats()
        self.stopping = threading.Event()
        self.generator = BatchingGenerator(model_dir, dtype, max_batch, self.stats)
        self.httpd = ThreadingHTTPServer((host, port), self.handler_class())
        self.httpd.daemon_threads = True
        self.url = f"http://{host}:{self.httpd.server_address[1]}/v1"

    def handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet: /stats says what happened
                pass

            def reply(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (its timeout) first
                    pass

            def do_GET(self):
                if self.path.rstrip("/") == "/v1/models":
                    self.reply(200, {"object": "list", "data": [{"id": server.model_name, "object": "model"}]})
                elif self.path.rstrip("/") == "/stats":
                    self.reply(200, server.stats.as_dict())
                else:
                    self.reply(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self):
                if self.path.rstrip("/") != "/v1/chat/completions":
                    return self.reply(404, {"error": {"message": f"no route {self.path}"}})
                try:
                    request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                    messages, max_tokens = request["messages"], int(request.get("max_tokens") or 64)
                    temperature, seed = float(request.get("temperature") or 0.0), int(request.get("seed") or 0)
                except (ValueError, KeyError, TypeError) as exc:
                    return self.reply(400, {"error": {"message": f"bad request: {exc}"}})
                number = server.stats.count("received")
                faults = server.faults
                if faults.fail_every and number % faults.fail_every == 0:
                    server.stats.count("failed")
                    return self.reply(500, {"error": {"message": "injected failure"}})
                if (faults.stall_every and number % faults.stall_every == 0) or (
                    faults.stall_after and number > faults.stall_after
                ):
                    server.stats.count("stalled")
                    server.stopping.wait(
                        faults.stall_s if not faults.stall_after or number <= faults.stall_after else None
                    )
                    if server.stopping.is_set():
                        return None
                reply = server.generator.submit(messages, max_tokens, temperature, seed).result()
                server.stats.count("served")
                self.reply(
                    200,
                    {
                        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": server.model_name,
                        "choices": [
                            {"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}
                        ],
                    },
                )
                return None

        return Handler

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def __enter__(self) -> AnnotatorServer:
        threading.Thread(target=self.httpd.serve_forever, daemon=True, name="annotator-http").start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
