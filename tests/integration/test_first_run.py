"""A new user's first run: the real console script on a machine where Prefect never ran (a new
HOME, PREFECT_HOME and THINKFLOW_HOME; no database anywhere) works on the first try."""

import json
import subprocess
from pathlib import Path

from conftest import PROJECT_ROOT
from tiny_cli import THINKFLOW, fresh_machine_env, run_tiny


def test_the_first_run_on_a_fresh_machine_works_and_shows_progress(tmp_path):
    env = fresh_machine_env(tmp_path)
    database = Path(env["HOME"]) / ".prefect" / "prefect.db"
    assert not database.exists()
    done = run_tiny(PROJECT_ROOT, env, timeout_s=900)
    assert "creates its database first" in done.stderr  # it was a cold start, and the user was told why it waits
    assert database.exists()
    summary = json.loads(done.stdout)  # stdout is the one JSON object, nothing else
    assert summary["home"] == env["THINKFLOW_HOME"] and not summary["all_cached"]
    assert [row[0] for row in summary["comparison"]["rows"]] == ["base", "sft", "rl"]
    # progress lines with counts and rates, from the task (generation, sandbox) and the training worker
    for expected in (
        "generating: 16/16 replies (100%)",
        "sandbox: sampled solutions: 16/16 solutions",
        "[sft] sft: 4/4 steps (100%)",
        "[grpo] grpo: 2/2 steps (100%)",
        "steps/s",
    ):
        assert expected in done.stderr, expected


def test_prefect_that_cannot_start_is_one_line_with_the_fix(tmp_path):
    env = fresh_machine_env(tmp_path, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="1")
    done = subprocess.run(
        [THINKFLOW, "run", "think-anywhere", "--config", "configs/tiny.yaml"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and len(errors) == 1, done.stderr[-3000:]
    assert "did not start within 1 s" in errors[0] and "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS" in errors[0]
