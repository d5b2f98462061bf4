"""The tiny pipeline through the real console script, as a user starts it: the environment of a new
user (nothing of Prefect's or ours set) and one run whose JSON summary comes back. Shared by
integration/test_first_run.py, slow/test_stop_on_sigterm.py and pipeline_copies.py."""

import os
import subprocess
import sys
from pathlib import Path

THINKFLOW = str(Path(sys.executable).with_name("thinkflow"))
TINY_RUN = ["run", "think-anywhere", "--config", "configs/tiny.yaml", "--json"]


def fresh_machine_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """This process's environment as a new user would have it: nothing of Prefect's or ours set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "THINKFLOW_"))}
    home = tmp_path / "user"
    home.mkdir()
    return {**env, "HOME": str(home), "THINKFLOW_HOME": str(tmp_path / "thinkflow"), **extra}


def run_tiny(cwd: Path, env: dict[str, str], timeout_s: int, program: list[str] | None = None):
    """``thinkflow run think-anywhere --config configs/tiny.yaml --json`` (or ``program`` + those arguments)
    to its end; the finished process, asserted to have exited 0."""
    done = subprocess.run(
        [*(program or [THINKFLOW]), *TINY_RUN], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return done
