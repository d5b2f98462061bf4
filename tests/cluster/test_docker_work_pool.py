"""The Docker work pool, run: `thinkflow serve --pool docker` (a local Prefect server, the
thinkflow-docker pool, configs/deployments/docker.yaml, a prefect-docker worker), then
`prefect deployment run 'think-anywhere/docker'` on configs/tiny.yaml. The flow runs in a container
of the project image built offline, its sandbox jobs in the sandbox's own containers, and writes
artifacts and lineage into THINKFLOW_HOME mounted from the host, where this test reads them."""

import re
import subprocess
import sys

import pytest
from conftest import PROJECT_ROOT
from deployment_runs import tiny_deployment_run
from docker_checks import docker_or_skip

from sandbox.config import SandboxConfig


@pytest.fixture
def project_image():
    pytest.importorskip(
        "prefect_docker", reason="the Docker work pool's worker needs prefect-docker: pip install 'thinkflow[docker]'"
    )
    client = docker_or_skip(SandboxConfig(backend="docker"))
    built = subprocess.run(
        [sys.executable, "-m", "flows.cli", "sandbox", "setup-docker", "--project-image"],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=900,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    return client


def test_a_deployment_on_the_docker_work_pool_runs_the_tiny_pipeline_in_a_container(
    tmp_path, monkeypatch, project_image
):
    from storage import LineageStore

    home = tmp_path / "home"
    with tiny_deployment_run(tmp_path, monkeypatch, "think-anywhere/docker", pool_kind="docker") as (_, _, flow_run_id):
        worker_log = (tmp_path / "worker.log").read_text()
    assert re.search(r"Docker container '[\w-]+' has status 'running'", worker_log), worker_log[
        -3000:
    ]  # the flow ran in one

    lineage = LineageStore(home / "lineage.duckdb")  # written from inside the container, read here
    written = lineage.recent_runs(limit=100, flow_run_id=flow_run_id)
    assert {"load_problems", "sft", "grpo", "evaluate", "compare_evaluations"} <= {r["stage"] for r in written}
    assert all(r["status"] == "completed" for r in written)
    [grpo] = lineage.runs_of_stage("grpo")
    assert grpo["params"]["sandbox"]["backend"] == "docker"  # RL rewards came from container verdicts
    files = {p.name for p in home.rglob("*")}
    assert any(name.startswith("checkpoint-") for name in files)
    assert flow_containers_left(project_image) == []


def flow_containers_left(client, within_s: float = 180) -> list[str]:
    """The flow's containers still there once each has exited and the engine's auto_remove has run.

    The flow run is marked completed from inside its container, so `--watch` returns while that
    container's process is still exiting; the engine removes it a moment after it dies (2 s here,
    longer on a loaded CI machine). A container still running after `within_s` is reported."""
    import docker.errors
    import requests.exceptions

    left = []
    for container in client.containers.list(all=True, filters={"ancestor": "thinkflow-project:latest"}):
        try:
            container.wait(condition="removed", timeout=within_s)
        except docker.errors.NotFound:
            pass  # removed between the listing and the wait
        except (requests.exceptions.ConnectionError, requests.exceptions.ReadTimeout):
            container.reload()
            left.append(f"{container.name} ({container.status} after {within_s:.0f} s)")
    return left
