"""`thinkflow run think-anywhere --config configs/tiny.yaml --set sandbox.backend=docker`, as a user
types it: every verdict (rejection sampling, RL rewards, evaluation) comes from the sandbox's
containers, the lineage says so, and no container is left when the command returns."""

import json
import os
import subprocess
import sys
import time

from conftest import PROJECT_ROOT
from docker_checks import docker_or_skip

from sandbox.config import SandboxConfig


def test_the_tiny_pipeline_runs_with_its_verdicts_from_containers(tmp_path):
    client = docker_or_skip(SandboxConfig(backend="docker"))
    started = int(time.time()) - 1
    before = {c.id for c in client.containers.list(filters={"label": "thinkflow.sandbox=worker"})}
    env = {**os.environ, "HOME": str(tmp_path), "THINKFLOW_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "flows.cli",
            "run",
            "think-anywhere",
            "--config",
            "configs/tiny.yaml",
            "--set",
            "sandbox.backend=docker",
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env=env,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["stages"][-1]["label"] == "compare"

    from storage import LineageStore

    lineage = LineageStore(tmp_path / "home" / "lineage.duckdb")
    [grpo] = lineage.runs_of_stage("grpo")
    assert grpo["params"]["sandbox"]["backend"] == "docker"
    assert {r["params"]["sandbox"]["backend"] for r in lineage.runs_of_stage("sample_solutions_shard")} == {"docker"}
    events = client.events(
        since=started,
        until=int(time.time()) + 1,
        decode=True,
        filters={"type": "container", "event": "start", "label": "thinkflow.sandbox=worker"},
    )
    assert sum(1 for _ in events) >= 1  # sandbox containers started for this run's verdicts
    after = {c.id for c in client.containers.list(filters={"label": "thinkflow.sandbox=worker"})}
    assert after <= before  # and stopped when it ended
