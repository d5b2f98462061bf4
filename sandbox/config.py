"""How the sandbox runs: backend, pool size, per-solution limits."""

from __future__ import annotations

import os
from dataclasses import dataclass

BACKENDS = ("local", "docker")
ISOLATION_LEVELS = ("strict", "weak")


class SandboxUnavailable(RuntimeError):
    """The requested isolation cannot be had here; the message says what failed and what to do."""


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)))


@dataclass(frozen=True)
class SandboxConfig:
    backend: str = "local"  # local | docker
    workers: int = 0  # 0: one per core
    isolation: str = "strict"  # strict: refuse to run without namespaces + uid drop; weak: fall back
    timeout_s: float = 6.0  # wall clock for all test cases of one solution
    memory_mb: int = 1024  # address space of one solution
    file_mb: int = 16  # largest file it may write
    workdir_mb: int = 64  # its tmpfs workdir (all files together)
    open_files: int = 64
    processes: int = 32  # RLIMIT_NPROC for the slot uid (bounds fork bombs)
    output_cap_bytes: int = 4 * 1024 * 1024  # results + stderr; past it the run is killed
    infra_retries: int = 2  # a job whose worker died is retried this often before infra_error
    recycle_after: int = 500  # a worker is replaced after this many jobs (0: never)
    base_uid: int = 61000  # slot k runs solutions as uid base_uid + k
    docker_image: str = "thinkflow-sandbox:latest"
    docker_memory_mb: int = 2048  # per container
    docker_pids: int = 128  # per container

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise ValueError(f"sandbox.backend is {self.backend!r}; expected one of {BACKENDS}")
        if self.isolation not in ISOLATION_LEVELS:
            raise ValueError(f"sandbox.isolation is {self.isolation!r}; expected one of {ISOLATION_LEVELS}")
        if self.timeout_s <= 0 or self.workers < 0:
            raise ValueError("sandbox.timeout_s must be > 0 and sandbox.workers >= 0")

    @property
    def pool_size(self) -> int:
        return self.workers or default_workers()

    def limits(self) -> dict[str, int]:
        return {
            "memory_mb": self.memory_mb,
            "cpu_s": max(1, int(self.timeout_s) + 1),
            "file_mb": self.file_mb,
            "open_files": self.open_files,
            "processes": self.processes,
        }
