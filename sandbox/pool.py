"""The worker pool: jobs in, verdicts out, over long-lived workers (local processes or containers).

One event loop feeds every worker one job at a time and reads the replies. A worker that dies or
stops answering is replaced and its job retried; only after ``infra_retries`` does a job become an
``infra_error`` (never a failed solution). Workers are replaced every ``recycle_after`` jobs; the
replacement is started in the background half-way there, so recycling never stalls the loop.
Pools are kept per configuration for the life of the process, so RL steps do not pay worker
start-up.
"""

from __future__ import annotations

import atexit
import os
import select
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace

from sandbox.config import SandboxConfig
from sandbox.protocol import ProtocolError, encode, parse_records
from sandbox.verdicts import ChildRun, Job, TestSpecError, Verdict, child_payload, count_tests, judge

HUNG_GRACE_S = 10.0  # past the per-solution limit, a worker that has not answered is replaced
PIPELINE_DEPTH = 2  # jobs handed to a worker ahead of its replies


# imported only when a recipe picks ``backend: docker``; tasks/code_version.py leaves it out of the stages'
# code versions and the recipe's sandbox section counts it in their cache keys when it is picked
OPTIONAL_IMPORTS = ("sandbox.docker_backend",)


def make_worker(slot: int, cfg: SandboxConfig):
    if cfg.backend == "docker":
        from sandbox.docker_backend import DockerWorker

        return DockerWorker(slot, cfg)
    from sandbox.local import LocalWorker

    return LocalWorker(slot, cfg)


class WorkerPool:
    def __init__(self, cfg: SandboxConfig):
        self.cfg = cfg
        self.workers: list = [None] * cfg.pool_size
        self.lock = threading.Lock()
        self.owner_pid = os.getpid()
        self.started_workers = 0
        self.assigned = [0] * cfg.pool_size  # jobs handed to each worker since it started
        self.starter = ThreadPoolExecutor(cfg.pool_size, thread_name_prefix="sandbox-start")
        self.spares: dict[int, Future] = {}  # slot -> its next worker, starting in the background

    def started_worker(self, slot: int):
        worker = make_worker(slot, self.cfg)
        worker.start()
        return worker

    def prepare_spare(self, slot: int) -> None:
        if slot not in self.spares:
            self.spares[slot] = self.starter.submit(self.started_worker, slot)

    def worker(self, slot: int):
        """The slot's worker; a spare already starting is waited for, else one starts now (raises
        SandboxUnavailable where the isolation cannot be had, WorkerStartError if it did not come up)."""
        if self.workers[slot] is None:
            spare = self.spares.pop(slot, None)
            self.workers[slot] = spare.result() if spare else self.started_worker(slot)
            self.started_workers += 1
        return self.workers[slot]

    def start(self) -> WorkerPool:
        """Start every worker now, side by side."""
        with self.lock:
            for slot in range(len(self.workers)):
                if self.workers[slot] is None:
                    self.prepare_spare(slot)
            for slot in range(len(self.workers)):
                self.worker(slot)
        return self

    def retire(self, slot: int) -> None:
        worker, self.workers[slot] = self.workers[slot], None
        self.assigned[slot] = 0
        if worker is not None:
            worker.stop()

    def close(self) -> None:
        for slot in range(len(self.workers)):
            self.retire(slot)
        for spare in self.spares.values():
            try:
                spare.result().stop()
            except Exception:  # noqa: BLE001 - a spare that never came up has nothing to stop
                pass
        self.spares.clear()

    def due_for_recycling(self, slot: int) -> bool:
        return bool(self.cfg.recycle_after) and self.assigned[slot] >= self.cfg.recycle_after

    def worker_pids(self) -> list[int]:
        return [w.pid() for w in self.workers if w is not None and w.pid()]

    def execute(self, payloads: list[dict], progress: Callable[[int], None] | None = None) -> list[ChildRun | str]:
        """Run each payload once; a ChildRun per payload, or a string saying why the sandbox failed."""
        with self.lock:
            return self._execute(payloads, progress)

    def _execute(self, payloads, progress):
        """Keep ``PIPELINE_DEPTH`` jobs in flight per worker, so a worker never waits for us."""
        cfg = self.cfg
        limits = cfg.limits()
        queue = deque(range(len(payloads)))
        attempts = [0] * len(payloads)
        results: list = [None] * len(payloads)
        in_flight: dict[int, deque] = {slot: deque() for slot in range(len(self.workers))}
        head_deadline: dict[int, float] = {}
        patience = cfg.timeout_s + HUNG_GRACE_S

        def give_up_or_retry(index: int, reason: str) -> None:
            attempts[index] += 1
            if attempts[index] > cfg.infra_retries:
                results[index] = f"sandbox worker failed {attempts[index]} times: {reason}"
                if progress:
                    progress(1)
            else:
                queue.appendleft(index)

        def lose_worker(slot: int, reason: str) -> None:
            """The worker died or hung: its head job counts an attempt, the others go back as they were."""
            self.retire(slot)
            jobs = in_flight[slot]
            for index in reversed(list(jobs)[1:]):
                queue.appendleft(index)
            give_up_or_retry(jobs[0], reason)
            jobs.clear()
            head_deadline.pop(slot, None)

        while queue or any(in_flight.values()):
            for slot, jobs in in_flight.items():
                while queue and len(jobs) < PIPELINE_DEPTH and not self.due_for_recycling(slot):
                    index = queue.popleft()
                    message = {
                        "id": index,
                        "job": payloads[index],
                        "limits": limits,
                        "timeout_s": cfg.timeout_s,
                        "output_cap": cfg.output_cap_bytes,
                    }
                    try:
                        self.worker(slot).write(encode(message))
                    except OSError as exc:
                        jobs.append(index)
                        lose_worker(slot, f"could not hand the job to the worker: {exc}")
                        break
                    if not jobs:
                        head_deadline[slot] = time.monotonic() + patience
                    jobs.append(index)
                    self.assigned[slot] += 1
                    if cfg.recycle_after and self.assigned[slot] >= cfg.recycle_after // 2:
                        self.prepare_spare(slot)
            busy = [slot for slot, jobs in in_flight.items() if jobs]
            if not busy:
                continue
            by_fd = {self.workers[slot].fileno(): slot for slot in busy}
            wait = max(0.0, min(head_deadline[slot] for slot in busy) - time.monotonic())
            readable, _, _ = select.select(list(by_fd), [], [], wait)
            for fd in readable:
                slot = by_fd[fd]
                worker, jobs = self.workers[slot], in_flight[slot]
                try:
                    messages = worker.read_messages()
                except (OSError, ProtocolError) as exc:
                    messages, why = None, str(exc)
                else:
                    why = "the worker exited"
                if messages is None:
                    lose_worker(slot, f"{why} {worker.stderr_tail()}".strip())
                    continue
                for message in messages:
                    if not jobs or message.get("id") != jobs[0]:
                        continue
                    index = jobs.popleft()
                    results[index] = ChildRun(
                        records=parse_records(message["records"]),
                        stderr=message["stderr"],
                        timed_out=message["timed_out"],
                        output_capped=message["capped"],
                        returncode=message["returncode"],
                        seconds=message["seconds"],
                    )
                    head_deadline[slot] = time.monotonic() + patience
                    if progress:
                        progress(1)
                if self.due_for_recycling(slot) and not jobs:
                    self.retire(slot)
            now = time.monotonic()
            for slot in busy:
                if in_flight[slot] and now > head_deadline[slot]:
                    lose_worker(slot, "the worker stopped answering")
        return results


_pools: dict[SandboxConfig, WorkerPool] = {}
_pools_lock = threading.Lock()


def pool_for(cfg: SandboxConfig) -> WorkerPool:
    """The process-wide pool for this configuration (started lazily, closed at exit)."""
    with _pools_lock:
        pool = _pools.get(cfg)
        if pool is None or pool.owner_pid != os.getpid():
            pool = _pools[cfg] = WorkerPool(cfg)
        return pool


@atexit.register
def close_pools() -> None:
    for pool in list(_pools.values()):
        if pool.owner_pid == os.getpid():
            pool.close()
    _pools.clear()


def run_batch(
    jobs: Iterable[Job],
    cfg: SandboxConfig = SandboxConfig(),
    progress: Callable[[int], None] | None = None,
    pool: WorkerPool | None = None,
) -> list[Verdict]:
    """Verdicts for a batch, in input order; identical (tests, normalized code) pairs run once.
    ``progress(n)`` is told of every job once, ``len(jobs)`` in all (retries are not counted again)."""
    jobs = list(jobs)
    keys = [job.dedup_key() for job in jobs]
    unique: dict[str, Job] = {}
    for key, job in zip(keys, jobs):
        unique.setdefault(key, job)
    outcomes: dict[str, Verdict] = {}
    runnable: list[tuple[str, Job, int]] = []
    for key, job in unique.items():
        try:
            total = count_tests(job.problem_id, job.tests)
        except TestSpecError as exc:
            outcomes[key] = Verdict(job.problem_id, job.solution_id, "infra_error", 0, 0, str(exc))
            continue
        if not job.code or not job.code.strip():
            outcomes[key] = Verdict(
                job.problem_id, job.solution_id, "error", 0, total, "no ```python code block in the response"
            )
            continue
        runnable.append((key, job, total))
    if progress and len(jobs) > len(runnable):  # duplicates and jobs with nothing to run are done already
        progress(len(jobs) - len(runnable))
    pool = pool or pool_for(cfg)
    for attempt in range(cfg.infra_retries + 1):
        if not runnable:
            break
        runs = pool.execute([child_payload(job) for _, job, _ in runnable], progress if attempt == 0 else None)
        again = []  # the child failed before running the solution (the pool already retried dead workers)
        for item, run in zip(runnable, runs):
            key, job, total = item
            if isinstance(run, str):
                outcomes[key] = Verdict(job.problem_id, job.solution_id, "infra_error", 0, total, run[:300])
                continue
            outcomes[key] = judge(job, total, run)
            if outcomes[key].status == "infra_error":
                again.append(item)
        runnable = again
    return [
        replace(outcomes[key], problem_id=job.problem_id, solution_id=job.solution_id) for key, job in zip(keys, jobs)
    ]


def run_job(job: Job, cfg: SandboxConfig = SandboxConfig()) -> Verdict:
    return run_batch([job], cfg)[0]
