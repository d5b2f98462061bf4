"""Docker backend: the same worker program in K long-lived containers, jobs streamed over the
attached socket (no container start or exec per job).

Each container: ``network_mode=none``, read-only root, a tmpfs /tmp, memory and pids limits,
``cap_drop=ALL``, ``no-new-privileges``, a non-root user, and the worker as pid 1 (so it reaps and
sweeps every process a solution leaves). The image is built from ``sandbox/Dockerfile`` the first
time it is missing. Without an answering engine, ``SandboxUnavailable`` says so.
"""

from __future__ import annotations

from pathlib import Path

from sandbox.config import SandboxConfig, SandboxUnavailable
from sandbox.protocol import STDERR, STDOUT, DockerStreamDemux, LineDecoder, first_message

STAGE_FILES = ("sandbox/Dockerfile", "sandbox/worker.py")  # the image the containers run: part of the code version
SANDBOX_FOLDER = Path(__file__).parent
HELLO_TIMEOUT_S = 60.0
SANDBOX_USER = "65534:65534"


def engine_client(timeout_s: float = 5.0):
    """A docker client whose engine answered a ping, or SandboxUnavailable saying why not."""
    try:
        import docker
    except ImportError as exc:
        raise SandboxUnavailable(f"the Docker backend needs the docker SDK (pip install docker): {exc}") from None
    try:
        client = docker.from_env(timeout=timeout_s)
        client.ping()
    except Exception as exc:  # noqa: BLE001 - the SDK raises several unrelated types here
        raise SandboxUnavailable(f"no Docker engine answered (DOCKER_HOST or /var/run/docker.sock): {exc}") from None
    return client


def ensure_image(client, tag: str) -> None:
    import docker

    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        try:
            client.images.build(path=str(SANDBOX_FOLDER), dockerfile="Dockerfile", tag=tag, rm=True)
        except docker.errors.DockerException as exc:
            raise SandboxUnavailable(f"could not build the sandbox image {tag} from {SANDBOX_FOLDER}/Dockerfile: {exc}") from None


def container_settings(cfg: SandboxConfig, slot: int) -> dict:
    """Keyword arguments for ``client.containers.create`` (unit-tested without an engine)."""
    return {
        "image": cfg.docker_image,
        "command": ["--slot", str(slot), "--workdir-mb", str(cfg.workdir_mb)],
        "stdin_open": True,
        "tty": False,
        "detach": True,
        "network_mode": "none",
        "read_only": True,
        "tmpfs": {"/tmp": f"size={max(64, cfg.workdir_mb * 2)}m,mode=1777,nosuid,nodev"},
        "mem_limit": f"{cfg.docker_memory_mb}m",
        "memswap_limit": f"{cfg.docker_memory_mb}m",
        "pids_limit": cfg.docker_pids,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "user": SANDBOX_USER,
        "environment": {"LANG": "C.UTF-8", "PYTHONHASHSEED": "0"},
        "init": False,  # the worker must be pid 1
        "auto_remove": True,
        "labels": {"thinkflow.sandbox": "worker", "thinkflow.slot": str(slot)},
    }


class DockerWorker:
    """One container running ``worker.py --isolation container``; same interface as LocalWorker."""

    def __init__(self, slot: int, cfg: SandboxConfig):
        self.slot, self.cfg = slot, cfg
        self.container = None
        self.socket = None
        self.demux, self.decoder = DockerStreamDemux(), LineDecoder()
        self.stderr = bytearray()
        self.hello: dict = {}

    def start(self) -> dict:
        client = engine_client()
        ensure_image(client, self.cfg.docker_image)
        self.container = client.containers.create(**container_settings(self.cfg, self.slot))
        attached = self.container.attach_socket(params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
        self.socket = getattr(attached, "_sock", attached)
        self.container.start()
        first = first_message(self, HELLO_TIMEOUT_S)
        if first is None or "hello" not in first:
            self.stop()
            raise OSError(f"sandbox container {self.slot} did not say hello: {first} {self.stderr_tail()}")
        self.hello = first["hello"]
        return self.hello

    def fileno(self) -> int:
        return self.socket.fileno()

    def write(self, data: bytes) -> None:
        self.socket.sendall(data)

    def read_messages(self) -> list[dict] | None:
        chunk = self.socket.recv(1 << 20)
        if not chunk:
            return None
        messages = []
        for stream, data in self.demux.feed(chunk):
            if stream == STDERR:
                self.stderr = (self.stderr + data)[-4000:]
            elif stream == STDOUT or stream == 0:
                messages += self.decoder.feed(data)
        return messages

    def stderr_tail(self) -> str:
        return self.stderr.decode(errors="replace")[-1000:].strip()

    def pid(self) -> int | None:
        return None

    def stop(self) -> None:
        container, self.container = self.container, None
        if self.socket is not None:
            try:
                self.socket.close()
            except OSError:
                pass
            self.socket = None
        if container is not None:
            try:
                container.kill()
            except Exception:  # noqa: BLE001 - already gone (auto_remove) is fine
                pass
