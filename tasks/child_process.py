"""Running a stage's heavy work in a child process, and calling a function in a fresh Python process.

``run_streamed`` starts a command in its own process group, streams its output into the run log
(library warnings as warnings), and kills the whole group at the time limit or when the run is told
to stop (Ctrl-C, SIGTERM: the run's KeyboardInterrupt). Training's worker (tasks/training/launch.py)
and ``call_in_fresh_process`` both run on it.

``call_in_fresh_process(function, *args)`` pickles the call, runs it in ``python -m
tasks.child_process`` and returns what the function returned, or raises the exception it raised
(with the child's traceback in the message). The evaluation stage decodes there: greedy decoding in
the long-lived flow process ran ~2.5x slower than the same call in a fresh process (2026-12-06: 200
replies of one checkpoint, 272 s in the mid-training flow after ~45 minutes of stages, 108-125 s in a
fresh process, also after three other models had sampled in it; the cause inside the flow process
is not found).
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import signal
import subprocess
import sys
import tempfile
import threading
import traceback
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tasks.stage_run import PROJECT_ROOT, run_logger

# Python warnings (FutureWarning, UserWarning, ...), accelerate's notice about defaults it chose, and what the
# Hugging Face libraries' own loggers print: their handler shows WARNING and above only, as "[transformers] ..."
LIBRARY_WARNING = re.compile(
    r"\b\w*Warning\b|warnings\.warn|^The following values were not passed to `accelerate launch`"
    r"|^\[(transformers|trl|peft|accelerate|datasets|huggingface_hub)\] "
)
CHILD_LOGGER = "thinkflow"  # what the child logs here reaches the run log through its output


def child_env(extra_env: dict[str, str] | None = None) -> dict[str, str]:
    """The child's environment: fixed thread counts (no dynamic adjustment to the machine's load:
    same recipe, same numbers), unbuffered output, the project importable."""
    env = {
        "OMP_DYNAMIC": "FALSE",
        "MKL_DYNAMIC": "FALSE",
        **os.environ,
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def run_streamed(
    command: list[str],
    tag: str,
    timeout_s: float | None,
    extra_env: dict[str, str] | None = None,
    pid_file: Path | None = None,
) -> tuple[int | None, list[str]]:
    """Run ``command``, each output line into the run log as ``[tag] line``; (exit code, last 40
    lines). The exit code is None when the time limit killed it; any other interruption kills the
    process group and propagates."""
    log = run_logger()
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=child_env(extra_env),
        start_new_session=True,
        cwd=PROJECT_ROOT,
    )
    if pid_file is not None:
        pid_file.write_text(str(proc.pid))
    tail: deque[str] = deque(maxlen=40)

    def pump() -> None:
        warning = False  # a library warning and the lines that continue it go to the log as warnings
        for line in proc.stdout:
            line = line.rstrip()
            tail.append(line)
            if line and "it/s]" not in line and "Loading weights" not in line:
                warning = bool(LIBRARY_WARNING.search(line)) or (warning and line.startswith((" ", "\t")))
                log.log(logging.WARNING if warning else logging.INFO, "[%s] %s", tag, line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        proc.wait(timeout=timeout_s)
    except BaseException as stop:  # the time limit, or the run told to stop: the child's whole group goes too
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if not isinstance(stop, subprocess.TimeoutExpired):
            raise
        return None, list(tail)
    finally:
        reader.join(timeout=5)
    return proc.returncode, list(tail)


class ChildProcessFailed(RuntimeError):
    """The child exited without a result (killed, or failed before it could write one)."""


def call_in_fresh_process(function: Callable[..., Any], *args: Any, tag: str, timeout_s: float | None = None, **kwargs):
    """``function(*args, **kwargs)`` in a fresh ``python -m tasks.child_process``: its return value,
    or its exception raised here. The function and its arguments must pickle (a module-level function,
    plain data, config sections, paths); its log lines to the ``thinkflow`` logger reach the run log."""
    with tempfile.TemporaryDirectory(prefix="thinkflow-call-") as folder:
        call, result = Path(folder) / "call.pickle", Path(folder) / "result.pickle"
        call.write_bytes(pickle.dumps((function, args, kwargs)))
        code, tail = run_streamed([sys.executable, "-m", "tasks.child_process", str(call), str(result)], tag, timeout_s)
        if code is None:
            raise ChildProcessFailed(f"{tag}: exceeded its {timeout_s:.0f} s limit and was killed")
        if not result.exists():
            raise ChildProcessFailed(f"{tag}: the child process exited with {code} and no result:\n" + "\n".join(tail))
        outcome, value, child_traceback = pickle.loads(result.read_bytes())
    if outcome == "raised":
        value.add_note(f"raised in the child process ({tag}):\n{child_traceback}")
        raise value
    return value


def child_main(call: Path, result: Path) -> int:
    handler = logging.StreamHandler(sys.stdout)  # bare lines: the parent's run log adds time and level
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger(CHILD_LOGGER)
    logger.handlers, logger.propagate = [handler], False
    logger.setLevel(logging.INFO)
    function, args, kwargs = pickle.loads(call.read_bytes())
    try:
        outcome = ("returned", function(*args, **kwargs), "")
    except Exception as exc:  # noqa: BLE001 - handed to the parent, which raises it
        try:
            pickle.dumps(exc)
        except Exception:  # noqa: BLE001 - an exception that does not pickle becomes one that does
            exc = RuntimeError(f"{type(exc).__name__}: {exc}")
        outcome = ("raised", exc, traceback.format_exc())
    partial = result.with_suffix(".partial")
    partial.write_bytes(pickle.dumps(outcome))
    os.replace(partial, result)  # the parent sees a whole result or none
    return 0


if __name__ == "__main__":
    sys.exit(child_main(Path(sys.argv[1]), Path(sys.argv[2])))
