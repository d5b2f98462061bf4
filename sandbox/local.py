"""Local backend: sandbox workers as child processes of this one, isolated by Linux namespaces.

``LocalWorker`` starts ``worker.py`` under ``python -I`` with a clean environment and waits for its
hello, which reports the isolation it got. With ``isolation: strict`` (the default) a worker that
could not enter its namespaces, or cannot move solutions to an unprivileged uid, is refused with
``SandboxUnavailable``; with ``isolation: weak`` the worker falls back to a subreaper without
namespaces, and the report says what is missing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from sandbox.config import SandboxConfig, SandboxUnavailable
from sandbox.protocol import LineDecoder, first_message

STAGE_FILES = ("sandbox/worker.py",)  # the program each worker runs: part of every sandboxed stage's code version
WORKER_PROGRAM = Path(__file__).with_name("worker.py")
HELLO_TIMEOUT_S = 30.0


def clean_env() -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0", "HOME": "/nonexistent"}


class WorkerStartError(OSError):
    """A worker process did not come up (transient: the pool retries)."""


class LocalWorker:
    """One worker process; the pool writes job lines to it and reads replies from ``fileno()``."""

    def __init__(self, slot: int, cfg: SandboxConfig):
        self.slot, self.cfg = slot, cfg
        self.proc: subprocess.Popen | None = None
        self.decoder = LineDecoder()
        self.errors = tempfile.TemporaryFile()
        self.hello: dict = {}

    def command(self, mode: str) -> list[str]:
        return [
            sys.executable,
            "-I",
            "-B",
            str(WORKER_PROGRAM),
            "--slot",
            str(self.slot),
            "--isolation",
            mode,
            "--base-uid",
            str(self.cfg.base_uid),
            "--workdir-mb",
            str(self.cfg.workdir_mb),
        ]

    def start(self) -> dict:
        reply = self._launch("namespaces")
        if "fatal" in reply:
            if self.cfg.isolation == "strict":
                raise SandboxUnavailable(
                    f"the local sandbox could not isolate its worker: {reply['fatal']}. It needs Linux "
                    "namespaces (run as root or with CAP_SYS_ADMIN). Use sandbox.backend: docker, or set "
                    "sandbox.isolation: weak to accept a worker without network, pid and mount isolation."
                )
            reply = self._launch("weak")
            if "fatal" in reply:
                raise WorkerStartError(f"sandbox worker {self.slot} failed to start: {reply['fatal']}")
        self.hello = reply["hello"]
        if self.cfg.isolation == "strict" and not self.hello.get("uid_drop"):
            self.stop()
            raise SandboxUnavailable(
                "the local sandbox cannot run solutions as an unprivileged uid here ("
                + "; ".join(self.hello.get("missing", []))
                + "). Set sandbox.isolation: weak to accept that."
            )
        return self.hello

    def _launch(self, mode: str) -> dict:
        self.errors.seek(0)
        self.errors.truncate()
        self.proc = subprocess.Popen(
            self.command(mode),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.errors,
            env=clean_env(),
            start_new_session=True,
            cwd="/",
        )
        self.decoder = LineDecoder()
        first = first_message(self, HELLO_TIMEOUT_S)
        if first is None:
            self.stop()
            raise WorkerStartError(f"sandbox worker {self.slot} did not say hello: {self.stderr_tail()}")
        if "fatal" in first:
            self.stop()
        return first

    def fileno(self) -> int:
        return self.proc.stdout.fileno()

    def write(self, data: bytes) -> None:
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def read_messages(self) -> list[dict] | None:
        """Messages now readable; None when the worker has gone away."""
        chunk = os.read(self.fileno(), 1 << 20)
        if not chunk:
            return None
        return self.decoder.feed(chunk)

    def stderr_tail(self) -> str:
        self.errors.seek(0, os.SEEK_END)
        size = self.errors.tell()
        self.errors.seek(max(0, size - 1000))
        return self.errors.read().decode(errors="replace").strip()

    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def stop(self) -> None:
        """Ask politely (EOF), then kill the launcher; its namespace dies with it."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        try:
            proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        proc.stdout.close()
