"""Docker backend: the same worker program in K long-lived containers, jobs streamed over the
attached socket (no container start or exec per job).

Each container: ``network_mode=none``, read-only root, a tmpfs /tmp, memory and pids limits,
``cap_drop=ALL``, ``no-new-privileges``, the slot's own unprivileged uid (``base_uid + 1000 + slot``, so the
process limit of one container's solutions is not shared with another's), and the worker as pid 1 (so it reaps and
sweeps every process a solution leaves). The image is built from ``sandbox/Dockerfile`` the first
time it is missing, and again when its sources change. Without an answering engine, ``SandboxUnavailable`` says so.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from sandbox.config import SandboxConfig, SandboxUnavailable
from sandbox.protocol import STDERR, STDOUT, DockerStreamDemux, LineDecoder, first_message

STAGE_FILES = ("sandbox/Dockerfile", "sandbox/worker.py")  # the image the containers run: part of the code version
SANDBOX_FOLDER = Path(__file__).parent
HELLO_TIMEOUT_S = 60.0
REMOVAL_WAIT_S = 10.0


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


IMAGE_SOURCES = ("Dockerfile", "confine.py", "protocol.py", "runner.py", "worker.py")
CONTAINER_UID_OFFSET = 1000  # container slot k runs as base_uid + 1000 + k: apart from the local backend's uids
BASE_IMAGE = "thinkflow-base:bookworm"  # built offline by `thinkflow sandbox setup-docker`


def image_source_digest() -> str:
    """Hash of what goes into the sandbox image: an image built from other sources is rebuilt."""
    digest = hashlib.sha256()
    for name in IMAGE_SOURCES:
        digest.update(name.encode() + b"\0" + (SANDBOX_FOLDER / name).read_bytes())
    return digest.hexdigest()[:16]


def image_is_current(client, tag: str) -> bool:
    import docker

    try:
        image = client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return (image.labels or {}).get("thinkflow.source") == image_source_digest()


def ensure_image(client, tag: str) -> bool:
    """Build the sandbox image when it is missing or was built from other sources (True if built)."""
    import docker

    if image_is_current(client, tag):
        return False
    try:
        stale = client.images.get(tag).id
    except docker.errors.ImageNotFound:
        stale = None
    try:
        client.images.get(BASE_IMAGE)
    except docker.errors.ImageNotFound:
        raise SandboxUnavailable(
            f"the sandbox image {tag} needs its base image {BASE_IMAGE}, which is not there: "
            "build both offline with `thinkflow sandbox setup-docker` (as root)"
        ) from None
    try:
        client.images.build(
            path=str(SANDBOX_FOLDER),
            dockerfile="Dockerfile",
            tag=tag,
            rm=True,
            forcerm=True,
            buildargs={"BASE_IMAGE": BASE_IMAGE},
            labels={"thinkflow.source": image_source_digest()},
        )
    except docker.errors.DockerException as exc:
        raise SandboxUnavailable(
            f"could not build the sandbox image {tag} from {SANDBOX_FOLDER}/Dockerfile: {exc}"
        ) from None
    if stale is not None:
        try:
            client.images.remove(stale)
        except docker.errors.APIError:
            pass  # still used by a running container: it goes when that container does
    return True


def container_settings(cfg: SandboxConfig, slot: int) -> dict:
    """Keyword arguments for ``client.containers.create`` (unit-tested without an engine)."""
    uid = cfg.base_uid + CONTAINER_UID_OFFSET + slot
    return {
        "image": cfg.docker_image,
        "command": ["--slot", str(slot), "--workdir-mb", str(cfg.workdir_mb)],
        "stdin_open": True,
        "tty": False,
        "detach": True,
        "network_mode": "none",
        "read_only": True,
        "tmpfs": {  # the workdir is its own tmpfs: all of a solution's files together stop at workdir_mb
            "/tmp": "size=16m,mode=1777,nosuid,nodev",
            "/tmp/work": f"size={cfg.workdir_mb}m,mode=0700,uid={uid},gid={uid},nosuid,nodev",
        },
        "mem_limit": f"{cfg.docker_memory_mb}m",
        "memswap_limit": f"{cfg.docker_memory_mb}m",
        "pids_limit": cfg.docker_pids,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "user": f"{uid}:{uid}",  # the slot's own uid: one container's RLIMIT_NPROC is not shared with another's
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
        self.host_pid: int | None = None

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
        self.container.reload()
        self.host_pid = self.container.attrs["State"]["Pid"] or None
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
        """The worker's pid as the host sees it (pid 1 inside its container)."""
        return self.host_pid

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
                container.wait(condition="removed", timeout=REMOVAL_WAIT_S)  # auto_remove: gone when this returns
            except Exception:  # noqa: BLE001 - already gone (auto_remove), or the engine is slow: it still goes
                pass
