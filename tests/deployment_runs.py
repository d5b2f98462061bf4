"""`prefect deployment run NAME --param config=configs/tiny.yaml --watch` against ``thinkflow serve``'s
LocalPrefect (a local server and a worker) in a fresh Prefect and thinkflow home: what slow/test_deployments.py
(a process work pool) and cluster/test_docker_work_pool.py (a Docker work pool) share."""

import re
import subprocess
from contextlib import contextmanager

from conftest import PROJECT_ROOT, free_port


@contextmanager
def tiny_deployment_run(tmp_path, monkeypatch, deployment: str, **pool):
    """Yields (local server, the finished `deployment run` process, its flow run id) while the server and worker
    still run; the run's THINKFLOW_HOME is ``tmp_path / "home"``, the worker's log ``tmp_path / "worker.log"``."""
    from flows.runtime.local_server import LocalPrefect, prefect_command

    (tmp_path / "home").mkdir(exist_ok=True)
    (tmp_path / "prefect").mkdir()
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    monkeypatch.setenv("THINKFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PREFECT_WORKER_QUERY_SECONDS", "2")
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with LocalPrefect(port=free_port(), log_dir=tmp_path, **pool) as local:
        command = [prefect_command(), "deployment", "run", deployment, "--param", "config=configs/tiny.yaml", "--watch"]
        run = subprocess.run(command, env=local.env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900)
        worker_log = (tmp_path / "worker.log").read_text()
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:] + worker_log[-4000:]
        yield local, run, re.search(r"UUID: ([0-9a-f-]{36})", run.stdout).group(1)
