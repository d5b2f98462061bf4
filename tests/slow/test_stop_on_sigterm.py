"""SIGTERM to `thinkflow run think-anywhere --config configs/tiny.yaml` while it samples solutions and while
it trains: the command exits within 10 s, leaves no process behind (training worker, sandbox workers,
Prefect's ephemeral server), and the same command then completes from the stages that had finished.
Slow tier: three runs of the tiny pipeline, each starting its own Prefect server (~3 minutes)."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import PROJECT_ROOT
from tiny_cli import THINKFLOW, TINY_RUN, fresh_machine_env, run_tiny


def processes_of(marker: str) -> list[str]:
    """Every live process whose environment holds ``marker`` (the run's own THINKFLOW_HOME), as "pid cmdline"."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if marker.encode() in (proc / "environ").read_bytes():
                state = next(l for l in (proc / "status").read_text().splitlines() if l.startswith("State:"))
                if "Z" not in state.split()[1]:  # a zombie has ended; only its exit status is left
                    cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                    found.append(f"{proc.name} {cmdline[:120]}")
        except (OSError, StopIteration):
            continue
    return found


def wait_for_line(log_path: Path, needle: str, proc, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if needle in log_path.read_text(errors="replace"):
            return
        assert proc.poll() is None, f"the run ended before {needle!r}"
        time.sleep(0.5)
    raise AssertionError(f"{needle!r} never appeared in the run's log")


@pytest.mark.parametrize("stage_line", ["Task run 'sample_solutions_shard", "[sft] sft: 0/"])
def test_sigterm_stops_the_run_within_10_s_and_the_rerun_completes(stage_line, tmp_path):
    env = fresh_machine_env(tmp_path)  # its own ephemeral server, the one a SIGTERM used to leave behind
    home = env["THINKFLOW_HOME"]
    log = tmp_path / "run.log"
    with open(log, "w") as sink:
        proc = subprocess.Popen(
            [THINKFLOW, *TINY_RUN],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=sink,
            text=True,
        )
        wait_for_line(log, stage_line, proc, timeout_s=240)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    took = time.monotonic() - sent
    assert took <= 10, f"exited {took:.1f} s after SIGTERM"
    assert proc.returncode == 130, log.read_text()[-2000:]
    time.sleep(1)
    assert processes_of(home) == [], "processes of the stopped run are still alive"
    rerun = run_tiny(PROJECT_ROOT, env, timeout_s=600)
    cached = {stage["label"]: stage["cached"] for stage in json.loads(rerun.stdout)["stages"]}
    assert cached["base model"] and cached["split"] and not cached["rl"]  # resumed from what had finished
    assert processes_of(home) == []
