"""Runs through one pool leave no zombie or stray process; over 10,000 runs (``slow``: ~100 s on
2 cores) the workers' memory stays flat."""

from pathlib import Path

import pytest

from sandbox import Job, SandboxConfig, WorkerPool, run_batch
from tests.test_sandbox_attacks import sandbox_processes

ADD = {"kind": "call", "fn_name": "add", "inputs": [[1, 2], [3, 4]], "outputs": [3, 7]}
BODIES = [
    "    return a + b",
    "    return a - b",
    "    raise ValueError('no')",
    "    import os\n    if os.fork() == 0:\n        while True:\n            pass\n    return a + b",
    "    return [a] * 10000",
]


def children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


def worker_inner_pids(pool: WorkerPool) -> list[int]:
    """The worker proper: the launcher's only child (pid 1 of its namespace)."""
    inner = [children(pid) for pid in pool.worker_pids()]
    assert all(len(c) == 1 for c in inner), inner
    return [c[0] for c in inner]


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def zombies_under(pid: int) -> list[int]:
    found = []
    for child in children(pid):
        state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "Z":
            found.append(child)
    return found


def batch(start: int, count: int) -> list[Job]:
    return [Job("p", str(i), f"def add(a, b):  # {i}\n{BODIES[i % len(BODIES)]}", ADD) for i in range(start, start + count)]


def assert_nothing_left_behind(pool: WorkerPool, cfg: SandboxConfig, inner: list[int]) -> None:
    import os

    assert worker_inner_pids(pool) == inner and pool.started_workers == 2  # the same two workers throughout
    assert all(children(pid) == [] for pid in inner), "a worker still has children after its batch"
    assert zombies_under(os.getpid()) == [] and all(zombies_under(pid) == [] for pid in inner)
    assert sandbox_processes(cfg) == []


def test_a_thousand_runs_with_forks_and_errors_leave_nothing_behind():
    cfg = SandboxConfig(workers=2, timeout_s=3, memory_mb=512, recycle_after=0)
    pool = WorkerPool(cfg)
    try:
        statuses = [v.status for v in run_batch(batch(0, 1000), cfg, pool=pool)]
        assert statuses.count("passed") == 400 and statuses.count("infra_error") == 0
        assert_nothing_left_behind(pool, cfg, worker_inner_pids(pool))
    finally:
        pool.close()


@pytest.mark.slow
def test_ten_thousand_runs_leave_nothing_behind_and_memory_stays_flat():
    cfg = SandboxConfig(workers=2, timeout_s=3, memory_mb=512, recycle_after=0)  # never recycle: measure the leak
    pool = WorkerPool(cfg)
    try:
        statuses = [v.status for v in run_batch(batch(0, 1000), cfg, pool=pool)]
        inner = worker_inner_pids(pool)
        rss_after_1000 = [rss_kb(pid) for pid in inner]
        for start in range(1000, 10_000, 1500):
            statuses += [v.status for v in run_batch(batch(start, min(1500, 10_000 - start)), cfg, pool=pool)]
        assert len(statuses) == 10_000
        assert statuses.count("passed") == 4000 and statuses.count("infra_error") == 0
        growth = [rss_kb(pid) - before for pid, before in zip(inner, rss_after_1000)]
        assert max(growth) < 1024, f"worker RSS grew by {growth} kB over 9,000 runs"
        assert_nothing_left_behind(pool, cfg, inner)
    finally:
        pool.close()
