"""Local backend v0: one fresh, limited child process per solution.

The parent writes the job (code + inputs) to a private temp workdir, starts ``child.py`` under
``python -I`` in a new session with a clean environment, reads strictly typed results from a
private pipe and decides the verdict here. At the wall-clock limit, and after every run, the whole
process group is killed; output is capped; the workdir is deleted.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable

from sandbox.verdicts import (
    Job,
    TestSpecError,
    Verdict,
    child_payload,
    count_tests,
    expected_outputs,
    output_matches,
)

CHILD_PROGRAM = Path(__file__).with_name("child.py")


@dataclass(frozen=True)
class SandboxConfig:
    timeout_s: float = 6.0  # wall clock for all test cases of one solution
    memory_mb: int = 1024  # address space
    file_mb: int = 16  # largest file the solution may write
    open_files: int = 64
    output_cap_bytes: int = 4 * 1024 * 1024  # results + stderr; past it the run is killed
    workers: int = 2
    infra_retries: int = 2

    def limits(self) -> dict[str, int]:
        return {
            "memory_mb": self.memory_mb,
            "cpu_s": max(1, int(self.timeout_s) + 1),
            "file_mb": self.file_mb,
            "open_files": self.open_files,
        }


@dataclass
class ChildRun:
    records: list[dict[str, Any]]
    stderr: str
    timed_out: bool
    output_capped: bool
    returncode: int | None
    seconds: float


def _clean_env() -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0", "HOME": "/nonexistent"}


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_child(payload: dict[str, Any], cfg: SandboxConfig) -> ChildRun:
    """Start one child for one solution and collect what it reports (no judging here)."""
    workdir = tempfile.mkdtemp(prefix="thinkflow-sbx-")
    read_fd, write_fd = os.pipe()
    started = time.monotonic()
    try:
        job_path = os.path.join(workdir, "job.json")
        with open(job_path, "w") as handle:
            json.dump({**payload, "limits": cfg.limits()}, handle)
        proc = subprocess.Popen(
            [sys.executable, "-I", "-B", str(CHILD_PROGRAM), job_path, str(write_fd)],
            cwd=workdir,
            env=_clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            pass_fds=(write_fd,),
            start_new_session=True,
        )
        os.close(write_fd)
        write_fd = -1
        try:
            raw, stderr, timed_out, capped = _collect(proc, read_fd, started + cfg.timeout_s, cfg.output_cap_bytes)
        finally:
            _kill_group(proc.pid)
            proc.wait()
        return ChildRun(
            records=_parse_records(raw),
            stderr=stderr.decode(errors="replace"),
            timed_out=timed_out,
            output_capped=capped,
            returncode=proc.returncode,
            seconds=time.monotonic() - started,
        )
    finally:
        if write_fd >= 0:
            os.close(write_fd)
        os.close(read_fd)
        shutil.rmtree(workdir, ignore_errors=True)


def _collect(proc: subprocess.Popen, result_fd: int, deadline: float, cap: int):
    """Read the result pipe and stderr until both close, the deadline passes or the cap is hit."""
    stderr_fd = proc.stderr.fileno()
    buffers = {result_fd: bytearray(), stderr_fd: bytearray()}
    selector = selectors.DefaultSelector()
    for fd in buffers:
        os.set_blocking(fd, False)
        selector.register(fd, selectors.EVENT_READ)
    timed_out = capped = False
    open_fds = set(buffers)
    while open_fds:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            timed_out = True
            break
        if proc.poll() is not None:
            remaining = min(remaining, 0.2)  # the child is gone; drain what is left quickly
        events = selector.select(timeout=remaining)
        if not events and proc.poll() is not None:
            break
        for key, _ in events:
            chunk = os.read(key.fd, 65536)
            if not chunk:
                selector.unregister(key.fd)
                open_fds.discard(key.fd)
                continue
            buffers[key.fd] += chunk
        if sum(len(b) for b in buffers.values()) > cap:
            capped = True
            break
    selector.close()
    proc.stderr.close()
    return bytes(buffers[result_fd]), bytes(buffers[stderr_fd][-2000:]), timed_out, capped


def _parse_records(raw: bytes) -> list[dict[str, Any]]:
    records = []
    for line in raw.split(b"\n"):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            records.append({"garbage": True})
            continue
        records.append(record if isinstance(record, dict) else {"garbage": True})
    return records


def judge(job: Job, total: int, run: ChildRun) -> Verdict:
    """Decide the verdict from what the child reported; expected values never left this process."""
    base = dict(problem_id=job.problem_id, solution_id=job.solution_id, total=total, seconds=run.seconds)
    records = run.records
    if not records or records[0] != {"ready": True}:
        detail = f"sandbox child failed before running the solution (exit {run.returncode}): {run.stderr[-300:]}"
        return Verdict(status="infra_error", passed=0, detail=detail.strip(), **base)
    results: dict[int, dict[str, Any]] = {}
    load_error = None
    for record in records[1:]:
        if "load_error" in record and load_error is None:
            load_error = record
        index = record.get("t")
        if type(index) is int and 0 <= index < total and index not in results:
            results[index] = record
    if load_error is not None:
        status = "memory" if load_error.get("k") == "memory" else "error"
        return Verdict(status=status, passed=0, detail=str(load_error["load_error"])[:300], **base)
    expected = expected_outputs(job.tests, total)
    passed, first_status, first_detail = 0, None, ""
    for index in range(total):
        record = results.get(index)
        if record is not None and "v" in record and output_matches(record["v"], expected[index], job.tests):
            passed += 1
            continue
        if first_status is not None:
            continue
        if record is None:
            first_status = "timeout" if run.timed_out else "error"
            first_detail = _missing_detail(index, run)
        elif "e" in record:
            first_status = "memory" if record.get("k") == "memory" else "error"
            first_detail = f"test {index}: {record['e']}"
        else:
            first_status = "failed"
            shown = "assertion failed" if job.tests["kind"] in ("assert", "check") else json.dumps(record.get("v"))[:150]
            first_detail = f"test {index}: wrong answer {shown}"
    if passed == total and not run.output_capped:
        return Verdict(status="passed", passed=passed, detail="", **base)
    if run.output_capped:
        first_status, first_detail = "error", "output limit exceeded"
    return Verdict(status=first_status or "failed", passed=passed, detail=first_detail[:300], **base)


def _missing_detail(index: int, run: ChildRun) -> str:
    if run.timed_out:
        return f"test {index}: wall-clock limit reached"
    if run.returncode and run.returncode < 0:
        return f"test {index}: process killed by signal {-run.returncode}"
    return f"test {index}: the process ended before reporting a result (exit {run.returncode})"


def run_job(job: Job, cfg: SandboxConfig) -> Verdict:
    """One solution against its tests, retrying sandbox failures that are not the solution's."""
    try:
        total = count_tests(job.problem_id, job.tests)
    except TestSpecError as exc:
        return Verdict(job.problem_id, job.solution_id, "infra_error", 0, 0, str(exc))
    if not job.code or not job.code.strip():
        return Verdict(job.problem_id, job.solution_id, "error", 0, total, "no ```python code block in the response")
    payload = child_payload(job)
    verdict = None
    for _ in range(cfg.infra_retries + 1):
        try:
            verdict = judge(job, total, run_child(payload, cfg))
        except OSError as exc:
            verdict = Verdict(job.problem_id, job.solution_id, "infra_error", 0, total, f"could not start the sandbox: {exc}")
        if verdict.status != "infra_error":
            return verdict
    return verdict


def run_batch(
    jobs: Iterable[Job],
    cfg: SandboxConfig = SandboxConfig(),
    progress: Callable[[int], None] | None = None,
) -> list[Verdict]:
    """Verdicts for a batch, in input order; identical (tests, code) pairs execute once."""
    jobs = list(jobs)
    unique: dict[str, Job] = {}
    for job in jobs:
        unique.setdefault(job.dedup_key(), job)
    outcomes: dict[str, Verdict] = {}
    with ThreadPoolExecutor(max_workers=max(1, cfg.workers)) as pool:
        futures = {key: pool.submit(run_job, job, cfg) for key, job in unique.items()}
        for key, future in futures.items():
            outcomes[key] = future.result()
            if progress:
                progress(1)
    verdicts = []
    for job in jobs:
        shared = outcomes[job.dedup_key()]
        verdicts.append(replace(shared, problem_id=job.problem_id, solution_id=job.solution_id))
    return verdicts
