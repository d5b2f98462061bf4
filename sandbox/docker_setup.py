"""``thinkflow sandbox setup-docker``: a Docker engine and the sandbox image on a machine with no
image registry, and ``stop-docker``, which stops only what setup started.

As root on Debian: the engine (Debian's ``docker.io``) is installed when ``dockerd`` is missing and
started when none answers, with ``--iptables=false --ip-forward=false --bridge=none`` so the host's
network rules stay as they were (the sandbox's containers run with ``network_mode=none``; the
project image's work-pool containers use the host network); the base image is a debootstrap of the
host's Debian suite with python3, imported as ``thinkflow-base:bookworm``; the sandbox image is
built from it (``sandbox/Dockerfile``). Each step is skipped when its result is already there, so a
second run takes seconds. What setup started is written to ``/run/thinkflow-docker/state.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.config import SandboxUnavailable
from sandbox.docker_backend import BASE_IMAGE, engine_client, ensure_image

STATE_DIR = Path("/run/thinkflow-docker")
DOCKERD_FLAGS = ("--iptables=false", "--ip-forward=false", "--bridge=none")
ENGINE_PACKAGES = ("docker.io",)
ROOTFS_PACKAGES = ("debootstrap",)
ENGINE_READY_S = 30.0


class DockerSetupError(SandboxUnavailable):
    """A step of the setup could not be done here; the message says what is missing."""


@dataclass
class SetupReport:
    steps: list[tuple[str, str, float]] = field(default_factory=list)  # (step, what happened, seconds)

    def add(self, step: str, outcome: str, started: float) -> None:
        self.steps.append((step, outcome, round(time.monotonic() - started, 1)))


def run_command(argv: list[str], what: str, **kwargs) -> subprocess.CompletedProcess:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    except FileNotFoundError:
        raise DockerSetupError(f"{what}: {argv[0]} is not installed") from None
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise DockerSetupError(f"{what} failed ({' '.join(argv[:4])}…, exit {result.returncode}): {' | '.join(tail)}")
    return result


def apt_install(packages: tuple[str, ...]) -> None:
    """Debian's packages, refreshing the package lists once if the first try finds nothing."""
    if shutil.which("apt-get") is None:
        raise DockerSetupError(
            f"{', '.join(packages)} missing and this is not a Debian machine (no apt-get): "
            "install a Docker engine and debootstrap yourself, then run this again"
        )
    argv = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        run_command(argv, f"installing {' '.join(packages)}", env=env)
    except DockerSetupError:
        run_command(["apt-get", "update"], "refreshing the package lists", env=env)
        run_command(argv, f"installing {' '.join(packages)}", env=env)


def require_root(why: str) -> None:
    if os.geteuid() != 0:
        raise DockerSetupError(
            f"{why} needs root (run `sudo thinkflow sandbox setup-docker`), "
            "or start a Docker engine yourself and run this again"
        )


def read_state() -> dict:
    try:
        return json.loads((STATE_DIR / "state.json").read_text())
    except (OSError, ValueError):
        return {}


def write_state(state: dict) -> None:
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    (STATE_DIR / "state.json").write_text(json.dumps(state, indent=1))


def engine_or_none(timeout_s: float = 2.0):
    try:
        return engine_client(timeout_s=timeout_s)
    except SandboxUnavailable:
        return None


def start_engine(report: SetupReport):
    """An answering engine: the one already running, or dockerd started now with the flags above."""
    started = time.monotonic()
    client = engine_or_none()
    if client is not None:
        report.add("engine", "already answering", started)
        return client
    require_root("starting a Docker engine")
    if shutil.which("dockerd") is None:
        apt_install(ENGINE_PACKAGES)
        report.add("engine install", f"apt-get install {' '.join(ENGINE_PACKAGES)}", started)
        started = time.monotonic()
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    log = open(STATE_DIR / "dockerd.log", "ab")
    process = subprocess.Popen(
        ["dockerd", *DOCKERD_FLAGS, "--pidfile", str(STATE_DIR / "dockerd.pid")],
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + ENGINE_READY_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DockerSetupError(
                f"dockerd exited with {process.returncode} at start: see {STATE_DIR / 'dockerd.log'}"
            )
        client = engine_or_none(timeout_s=1.0)
        if client is not None:
            write_state({**read_state(), "dockerd_pid": process.pid})
            report.add("engine", f"dockerd started (pid {process.pid}, {' '.join(DOCKERD_FLAGS)})", started)
            return client
        time.sleep(0.2)
    process.kill()
    raise DockerSetupError(f"dockerd did not answer within {ENGINE_READY_S:.0f} s: see {STATE_DIR / 'dockerd.log'}")


def debian_source() -> tuple[str, str]:
    """(suite, mirror) of this host's Debian, for debootstrap."""
    suite = "bookworm"
    for line in Path("/etc/os-release").read_text().splitlines() if Path("/etc/os-release").exists() else []:
        if line.startswith("VERSION_CODENAME=") and line.split("=", 1)[1].strip():
            suite = line.split("=", 1)[1].strip().strip('"')
    mirror = "http://deb.debian.org/debian"
    for sources in [Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")]:
        if sources.exists():
            for line in sources.read_text().splitlines():
                words = line.split()
                if words[:1] == ["URIs:"] and len(words) > 1 and "security" not in words[1]:
                    return suite, words[1]
                if words[:1] == ["deb"] and len(words) > 1 and "security" not in words[1]:
                    return suite, words[-3] if words[1].startswith("[") else words[1]
    return suite, mirror


def build_base_image(client, report: SetupReport) -> None:
    """The base image from Debian's own packages (no registry): debootstrap, then docker import."""
    import docker

    started = time.monotonic()
    try:
        client.images.get(BASE_IMAGE)
        report.add("base image", f"{BASE_IMAGE} already built", started)
        return
    except docker.errors.ImageNotFound:
        pass
    require_root("building the base image with debootstrap")
    if shutil.which("debootstrap") is None:
        apt_install(ROOTFS_PACKAGES)
    suite, mirror = debian_source()
    with tempfile.TemporaryDirectory(prefix="thinkflow-rootfs-", dir="/var/tmp") as scratch:
        rootfs = Path(scratch) / "rootfs"
        run_command(
            ["debootstrap", "--variant=minbase", "--include=python3", suite, str(rootfs), mirror],
            f"debootstrap {suite} from {mirror}",
        )
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (rootfs / cache).glob("*"):
                if entry.is_file():
                    entry.unlink()
        archive = Path(scratch) / "rootfs.tar"
        run_command(["tar", "-C", str(rootfs), "-cf", str(archive), "."], "packing the base image")
        repository, tag = BASE_IMAGE.split(":")
        client.api.import_image_from_file(str(archive), repository=repository, tag=tag)
    report.add("base image", f"{BASE_IMAGE}: debootstrap {suite} + python3, imported", started)


def setup_docker(sandbox_image: str) -> SetupReport:
    report = SetupReport()
    client = start_engine(report)
    build_base_image(client, report)
    started = time.monotonic()
    built = ensure_image(client, sandbox_image)
    report.add("sandbox image", f"{sandbox_image} {'built' if built else 'already current'}", started)
    return report


def stop_docker() -> list[str]:
    """Stop the sandbox's containers and the engine if setup started it; what was stopped."""
    stopped = []
    client = engine_or_none()
    if client is not None:
        for container in client.containers.list(filters={"label": "thinkflow.sandbox"}):
            container.kill()
            stopped.append(f"sandbox container {container.short_id}")
    state = read_state()
    pid = state.get("dockerd_pid")
    if pid and process_is_dockerd(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process_is_dockerd(pid):
            time.sleep(0.2)
        if process_is_dockerd(pid):
            os.kill(pid, signal.SIGKILL)
        stopped.append(f"dockerd (pid {pid})")
    if state:
        write_state({key: value for key, value in state.items() if key != "dockerd_pid"})
    return stopped


def process_is_dockerd(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == "dockerd"
    except OSError:
        return False
