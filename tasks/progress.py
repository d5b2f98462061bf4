"""Progress of the loops a person waits on (generation, sampling, annotation, sandbox batches,
evaluation): one line with counts, rate and time left, at the start, at most every ``every_s``
seconds, and at the end.

Lines go to the Prefect run logger inside a run (Prefect prints it in the terminal and keeps it
in the run's log) and to the ``thinkflow`` logger outside one. A report is a callable that takes
the number of items just finished, so it plugs into any ``progress=`` parameter (the sandbox's
``run_batch``, a generation backend's ``complete``) without those modules knowing about logging.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable

EVERY_S = 10.0


def progress_logger() -> logging.Logger | logging.LoggerAdapter:
    """The Prefect run logger inside a run; the ``thinkflow`` logger elsewhere (Prefect is not
    imported for that: a process that never loaded it, like ``thinkflow verify``, is in no run)."""
    if "prefect" in sys.modules:
        try:
            from prefect.logging import get_run_logger

            return get_run_logger()
        except Exception:  # noqa: BLE001 - outside a flow/task run context
            pass
    return logging.getLogger("thinkflow")


def duration_text(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def progress_line(what: str, done: int, total: int, elapsed_s: float, unit: str) -> str:
    """``sampling solutions: 32/164 replies (20%), 2.10 replies/s, 1m03s elapsed, ~1m03s left``."""
    share = f" ({100 * done / total:.0f}%)" if total else ""
    line = f"{what}: {done}/{total} {unit}{share}"
    if done and elapsed_s > 0:
        rate = done / elapsed_s
        line += f", {rate:.3g} {unit}/s, {duration_text(elapsed_s)} elapsed"
        if total > done:
            line += f", ~{duration_text((total - done) / rate)} left"
    elif elapsed_s > 0:
        line += f", {duration_text(elapsed_s)} elapsed"
    return line


class ProgressReport:
    """Counts finished items and logs a progress line now and then; thread-safe (shards and the
    sandbox's workers report from several threads)."""

    def __init__(
        self,
        what: str,
        total: int,
        unit: str = "items",
        every_s: float = EVERY_S,
        emit: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.what, self.total, self.unit, self.every_s = what, total, unit, every_s
        self.clock = clock
        # the logger is taken here, in the caller's thread: worker threads (the annotator's, the
        # sandbox's) are outside the Prefect run context and would fall back to a silent logger
        logger = progress_logger()
        self.emit = emit or (lambda line: logger.info("%s", line))
        self.done = 0
        self.started = clock()
        self.last_line = self.started
        self.lock = threading.Lock()
        self.emit(progress_line(what, 0, total, 0.0, unit))

    def __call__(self, finished: int = 1) -> None:
        with self.lock:
            self.done += finished
            now = self.clock()
            due = now - self.last_line >= self.every_s or self.done >= self.total
            if due:
                self.last_line = now
                line = progress_line(self.what, self.done, self.total, now - self.started, self.unit)
        if due:
            self.emit(line)

    def tick(self, note: str) -> None:
        """Inside a long item (a batch still decoding): a line with ``note`` when one is due, the
        counts unchanged."""
        with self.lock:
            now = self.clock()
            if now - self.last_line < self.every_s:
                return
            self.last_line = now
            line = progress_line(self.what, self.done, self.total, now - self.started, self.unit) + f"; {note}"
        self.emit(line)


def training_progress_callback(stage: str, every_s: float = EVERY_S, emit: Callable[[str], None] | None = None):
    """A transformers ``TrainerCallback`` printing ``stage: step 12/40 (30%), 0.5 steps/s, …, loss=1.93``
    at most every ``every_s`` seconds and at the last step (the training worker's stdout is streamed
    into the run log by the task that launched it). It replaces the trainer's raw log-dict printer.
    A step that runs longer than ``every_s`` (a GRPO step generates its rollouts first) gets a
    ``stage: step 3/8 running for 40s`` line from a watcher thread every ``every_s`` seconds."""
    from transformers import TrainerCallback

    emit = emit or (lambda line: print(line, flush=True))
    shown = ("loss", "reward", "grad_norm", "learning_rate")

    class TrainingProgress(TrainerCallback):
        def __init__(self):
            self.started = None
            self.last_line = 0.0
            self.first_step = 0
            self.last_step = -1

            self.step_started = None
            self.lock = threading.Lock()
            self.finished = threading.Event()

        def on_train_begin(self, args, state, control, **kwargs):
            self.started = self.last_line = time.monotonic()
            self.first_step = state.global_step  # a resumed run counts its rate from where it resumed
            emit(f"{stage}: {state.global_step}/{state.max_steps} steps, training")
            if every_s > 0:
                threading.Thread(target=self.watch, args=(state,), daemon=True, name="training-progress").start()

        def on_step_begin(self, args, state, control, **kwargs):
            self.step_started = time.monotonic()

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step >= state.max_steps:  # what follows the last step (a final probe, saving) is timed too
                self.step_started = time.monotonic()

        def on_train_end(self, args, state, control, **kwargs):
            self.finished.set()

        def watch(self, state) -> None:
            while not self.finished.wait(min(every_s, 1.0)):
                with self.lock:
                    now = time.monotonic()
                    if self.step_started is None or now - self.last_line < every_s:
                        continue
                    self.last_line = now
                emit(self.running_line(state, now - self.step_started))

        def running_line(self, state, running_s: float) -> str:
            if state.global_step >= state.max_steps:
                return (
                    f"{stage}: {state.max_steps}/{state.max_steps} steps done, finishing for {duration_text(running_s)}"
                )
            return f"{stage}: step {state.global_step + 1}/{state.max_steps} running for {duration_text(running_s)}"

        def on_log(self, args, state, control, logs=None, **kwargs):
            now = time.monotonic()
            final = state.global_step >= state.max_steps
            with self.lock:
                if (
                    self.started is None
                    or state.global_step == self.last_step
                    or (now - self.last_line < every_s and not final)
                ):
                    return
                self.last_line, self.last_step = now, state.global_step
            line = progress_line(
                stage,
                state.global_step - self.first_step,
                state.max_steps - self.first_step,
                now - self.started,
                "steps",
            )
            if self.first_step:
                line = line.replace(f"{stage}: ", f"{stage} (resumed at step {self.first_step}): ", 1)
            values = [f"{k}={logs[k]:.4g}" for k in shown if isinstance((logs or {}).get(k), (int, float))]
            emit(line + (", " + ", ".join(values) if values else ""))

    return TrainingProgress()
