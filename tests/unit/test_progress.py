"""Progress lines: counts, rate and time left, throttled; every sandbox job counted once."""

from pathlib import Path

from sandbox.config import SandboxConfig
from sandbox.pool import run_batch
from sandbox.verdicts import Job
from tasks.progress import ProgressReport, duration_text, progress_line, training_progress_callback


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_progress_line_has_counts_rate_and_time_left():
    assert (
        progress_line("generating", 32, 128, 16.0, "replies")
        == "generating: 32/128 replies (25%), 2 replies/s, 16s elapsed, ~48s left"
    )
    assert progress_line("sandbox", 0, 10, 0.0, "solutions") == "sandbox: 0/10 solutions (0%)"
    assert progress_line("sft", 40, 40, 125.0, "steps").endswith("0.32 steps/s, 2m05s elapsed")
    assert [duration_text(s) for s in (0.4, 59, 61, 3600 * 2 + 60 * 5)] == ["0s", "59s", "1m01s", "2h05m"]


def test_a_report_speaks_at_the_start_then_at_most_every_interval_and_at_the_end():
    lines, clock = [], Clock()
    report = ProgressReport("generating", 100, "replies", every_s=10, emit=lines.append, clock=clock)
    for _ in range(99):
        clock.now += 0.5
        report(1)
    report(1)
    assert lines[0] == "generating: 0/100 replies (0%)"
    assert lines[-1].startswith("generating: 100/100 replies (100%)")
    assert len(lines) == 1 + 4 + 1  # the start, one line per 10 s of the 50 s, and the end
    assert lines[1] == "generating: 20/100 replies (20%), 2 replies/s, 10s elapsed, ~40s left"


def test_every_sandbox_job_is_counted_once_duplicates_and_empty_code_included():
    counted = []
    add = {"kind": "call", "fn_name": "add", "inputs": [[1, 2]], "outputs": [3]}
    jobs = [Job("p", f"s{i}", "def add(a, b):\n    return a + b", add) for i in range(3)]  # one run for the three
    jobs += [Job("p", "empty", "", add), Job("p", "other", "def add(a, b):\n    return a - b", add)]
    verdicts = run_batch(jobs, SandboxConfig(workers=1), progress=counted.append)
    assert [v.status for v in verdicts] == ["passed"] * 3 + ["error", "failed"]
    assert sum(counted) == len(jobs)


def test_training_progress_replaces_the_raw_log_dict_with_steps_rate_and_loss():
    from transformers import TrainerState, TrainingArguments

    lines = []
    callback = training_progress_callback("sft", every_s=0.0, emit=lines.append)
    state, args = TrainerState(max_steps=4), TrainingArguments(output_dir=str(Path("/tmp/unused")), report_to="none")
    callback.on_train_begin(args, state, None)
    for step in range(1, 5):
        state.global_step = step
        callback.on_log(args, state, None, logs={"loss": 2.0 / step, "learning_rate": 1e-4})
    callback.on_log(args, state, None, logs={"train_runtime": 3.0})  # the trainer's closing summary: step already shown
    assert lines[0] == "sft: 0/4 steps, training"
    assert lines[1].startswith("sft: 1/4 steps (25%)") and "loss=2," in lines[1] and "left" in lines[1]
    assert lines[-1].startswith("sft: 4/4 steps (100%)") and "loss=0.5," in lines[-1]
    assert len(lines) == 5
    state.global_step = 2
    assert callback.running_line(state, 40.0) == "sft: step 3/4 running for 40s"
    state.global_step = 4  # after the last step (a final probe, saving): never "step 5/4"
    assert callback.running_line(state, 75.0) == "sft: 4/4 steps done, finishing for 1m15s"


def test_a_batch_that_decodes_for_long_reports_its_token_position(tiny_model_dir):
    from tasks.generation import HFBackend, Sampling

    lines, clock = [], Clock()
    report = ProgressReport("generating", 3, "replies", every_s=10, emit=lines.append, clock=clock)
    original = report.tick

    def tick_after_a_while(note):
        clock.now += 4  # each decoding step "takes" 4 s: a line every third step
        original(note)

    report.tick = tick_after_a_while
    replies = HFBackend(tiny_model_dir, batch_size=2).complete(
        ["def f(x):", "x = ", "import"], Sampling(max_new_tokens=8, stop_on_code_end=False), report
    )
    assert len(replies) == 3 and report.done == 3
    ticks = [line for line in lines if "; batch" in line]
    assert ticks and ticks[0].startswith("generating: 0/3 replies (0%), 12s elapsed; batch 1/2 at token ")
    assert any("batch 2/2" in line for line in ticks) and lines[-1].startswith("generating: 3/3 replies (100%)")


def test_a_long_training_step_is_reported_while_it_runs():
    import time

    from transformers import TrainerState, TrainingArguments

    lines = []
    callback = training_progress_callback("grpo", every_s=0.2, emit=lines.append)
    state, args = TrainerState(max_steps=8), TrainingArguments(output_dir="/tmp/unused", report_to="none")
    callback.on_train_begin(args, state, None)
    state.global_step = 2
    callback.on_step_begin(args, state, None)
    deadline = time.monotonic() + 30
    while not any("running for" in line for line in lines) and time.monotonic() < deadline:
        time.sleep(0.05)
    callback.on_train_end(args, state, None)
    assert "grpo: step 3/8 running for " in " ".join(lines), lines


def test_lines_from_worker_threads_reach_the_task_runs_log(prefect_harness):
    """The annotator and the sandbox count finished items in their own threads, which are outside
    Prefect's run context: every line still goes to the task run's logger."""
    import logging
    from concurrent.futures import ThreadPoolExecutor

    from prefect import flow, task

    class Keep(logging.Handler):
        def __init__(self):
            super().__init__()
            self.messages = []

        def emit(self, record):
            self.messages.append(record.getMessage())

    @task
    def count_in_threads():
        report = ProgressReport("annotator requests", 4, "replies", every_s=0)
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda _: report(1), range(4)))

    @flow
    def counting():
        count_in_threads()

    kept = Keep()
    task_runs = logging.getLogger("prefect.task_runs")
    task_runs.addHandler(kept)
    try:
        counting()
    finally:
        task_runs.removeHandler(kept)
    lines = [m for m in kept.messages if m.startswith("annotator requests:")]
    assert [line.split(" replies")[0] for line in lines] == [f"annotator requests: {n}/4" for n in range(5)]
