"""``thinkflow serve`` (``make serve``): a local Prefect server on 127.0.0.1, the process work pool,
the ``gpu`` concurrency limit, this checkout's deployments from ``prefect.yaml``, and a worker
(``--pool docker``: the Docker work pool and ``configs/deployments/docker.yaml``),
until Ctrl-C or SIGTERM, which stop the worker first and then the server.

With it running, from another shell:

    export PREFECT_API_URL=http://127.0.0.1:4200/api
    prefect deployment run 'think-anywhere/default' --param config=configs/tiny.yaml --watch

Each step is the ``prefect`` command a person would type, run as a subprocess with the API URL set,
so what this does can be repeated by hand (README, "Deployments").
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tasks.stage_run import PROJECT_ROOT

POOL = "thinkflow-process"
# pool kind -> (work pool, its deployments). The Docker pool's flow runs are containers of the
# project image (``thinkflow sandbox setup-docker --project-image``); its worker needs prefect-docker.
POOLS = {
    "process": (POOL, "prefect.yaml"),
    "docker": ("thinkflow-docker", "configs/deployments/docker.yaml"),
}
GPU_TAG, GPU_SLOTS = "gpu", 1  # training stages carry the tag: on one node they never overlap


class ServeError(RuntimeError):
    pass


def prefect_command() -> str:
    return str(Path(sys.executable).with_name("prefect"))


def api_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/api"


def wait_healthy(url: str, server: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise ServeError(f"the Prefect server exited with status {server.returncode} before it answered")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise ServeError(f"the Prefect server did not answer {url}/health within {timeout_s:.0f} s")


def stop(process: subprocess.Popen | None, name: str, grace_s: float = 20.0) -> None:
    """SIGTERM to the process (the ``prefect`` CLI, which forwards it to its child as SIGINT), then
    SIGKILL to its whole group after ``grace_s``, and to any member still left once it exited.
    Signalling the whole group at once gave the worker two signals (SIGTERM direct and the CLI's
    SIGINT), and it then sometimes never finished its shutdown."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        print(f"{name} did not stop within {grace_s:.0f} s; killing it", file=sys.stderr)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    try:
        os.killpg(process.pid, signal.SIGKILL)  # stragglers of the group, if any
    except ProcessLookupError:
        pass


@dataclass
class LocalPrefect:
    """The server, the pool, the limit, the deployments and a worker, started in that order."""

    port: int = 4200
    project_dir: Path = PROJECT_ROOT
    deploy: bool = True
    pool_kind: str = "process"  # process | docker (see POOLS)
    log_dir: Path | None = None  # server.log and worker.log; None: inherit this terminal
    server: subprocess.Popen | None = None
    worker: subprocess.Popen | None = None
    env: dict[str, str] = field(default_factory=dict)

    def start(self, timeout_s: float = 90.0) -> LocalPrefect:
        self.env = {
            **os.environ,
            "PREFECT_API_URL": api_url(self.port),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "THINKFLOW_PROJECT_DIR": str(self.project_dir),
        }
        try:
            self.server = self.spawn(
                "server", [prefect_command(), "server", "start", "--host", "127.0.0.1", "--port", str(self.port)]
            )
            wait_healthy(api_url(self.port), self.server, timeout_s)
            pool, deployments = POOLS[self.pool_kind]
            self.prefect("work-pool", "create", pool, "--type", self.pool_kind, "--overwrite")
            self.prefect("concurrency-limit", "create", GPU_TAG, str(GPU_SLOTS))
            if self.deploy:
                self.prefect("--no-prompt", "deploy", "--all", "--prefect-file", str(self.project_dir / deployments))
            self.worker = self.spawn("worker", [prefect_command(), "worker", "start", "--pool", pool])
        except BaseException:
            self.stop()
            raise
        return self

    def spawn(self, name: str, command: list[str]) -> subprocess.Popen:
        output = open(self.log_dir / f"{name}.log", "ab") if self.log_dir else None
        try:
            return subprocess.Popen(
                command,
                cwd=self.project_dir,
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT if output else None,
                start_new_session=True,
            )  # its own group: stop() signals the whole tree
        finally:
            if output:
                output.close()  # the child holds its own copy

    def prefect(self, *args: str) -> str:
        done = subprocess.run(
            [prefect_command(), *args], cwd=self.project_dir, env=self.env, capture_output=True, text=True, timeout=300
        )
        if done.returncode != 0:
            raise ServeError(
                f"prefect {' '.join(args)} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
            )
        return done.stdout

    def stop(self) -> None:
        # first: a worker whose API is gone hangs on SIGTERM. Its graceful stop can take over 20 s on a
        # busy machine (measured 2026-12-02 beside a demo run), so it gets a minute before SIGKILL.
        stop(self.worker, "the worker", grace_s=60.0)
        stop(self.server, "the Prefect server")

    def __enter__(self) -> LocalPrefect:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def serve_until_stopped(port: int, deploy: bool, pool_kind: str = "process") -> None:
    if pool_kind not in POOLS:
        raise ServeError(f"--pool is {pool_kind!r}; expected one of {sorted(POOLS)}")
    local = LocalPrefect(port=port, deploy=deploy, pool_kind=pool_kind)
    stopping = []

    def on_signal(signum, frame):
        stopping.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    local.start()
    pool, deployments = POOLS[pool_kind]
    print(
        f"Prefect server: http://127.0.0.1:{port} (UI and API), work pool {pool!r} with a worker, "
        f"concurrency limit {GPU_TAG!r} = {GPU_SLOTS}" + (f", deployments from {deployments}" if deploy else "")
    )
    print(f"  export PREFECT_API_URL={api_url(port)}")
    example = "think-anywhere/docker" if pool_kind == "docker" else "think-anywhere/default"
    print(f"  prefect deployment run '{example}' --param config=configs/tiny.yaml --watch")
    print("Ctrl-C (or SIGTERM) stops the worker, then the server.", flush=True)
    try:
        while not stopping:
            for process, name in ((local.server, "server"), (local.worker, "worker")):
                if process.poll() is not None:
                    raise ServeError(f"the Prefect {name} exited with status {process.returncode}")
            time.sleep(0.5)
    finally:
        local.stop()
        print("stopped the worker and the server", flush=True)
