"""Looking at processes from the outside: what the sandbox left running, a worker's children,
memory and zombies; and the batches the soak tests run."""

from pathlib import Path

from sandbox.config import SandboxConfig
from sandbox.pool import WorkerPool
from sandbox.verdicts import Job


def sandbox_processes(cfg: SandboxConfig | None = None) -> list[str]:
    """Solutions' processes still alive, as 'pid name state': local backend, any process of a slot
    uid; Docker backend, anything in a sandbox container but its worker (pid 1 there, which every
    orphan is re-parented to)."""
    cfg = cfg or SandboxConfig()
    if cfg.backend == "docker":
        return container_leftovers()
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        except OSError:
            continue
        uid = int(fields["Uid"].split()[0])
        if cfg.base_uid <= uid < cfg.base_uid + 64:  # the Docker backend's uids start at base_uid + 1000
            found.append(f"{status.parent.name} {fields['Name']} {fields['State']}")
    return found


def container_leftovers() -> list[str]:
    import docker

    found = []
    for container in docker.from_env().containers.list(filters={"label": "thinkflow.sandbox=worker"}):
        init = container.attrs["State"]["Pid"]
        found += [f"{pid} {process_name(pid)} in {container.name}" for pid in descendants(init)]
    return found


def descendants(pid: int) -> list[int]:
    try:
        below = children(pid)
    except OSError:
        return []
    return below + [grandchild for child in below for grandchild in descendants(child)]


def process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


ADD = {"kind": "call", "fn_name": "add", "inputs": [[1, 2], [3, 4]], "outputs": [3, 7]}

BODIES = [
    "    return a + b",
    "    return a - b",
    "    raise ValueError('no')",
    "    import os\n    if os.fork() == 0:\n        while True:\n            pass\n    return a + b",
    "    return [a] * 10000",
]


def children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


def worker_inner_pids(pool: WorkerPool) -> list[int]:
    """The worker proper: the launcher's only child (pid 1 of its namespace)."""
    inner = [children(pid) for pid in pool.worker_pids()]
    assert all(len(c) == 1 for c in inner), inner
    return [c[0] for c in inner]


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def zombies_under(pid: int) -> list[int]:
    found = []
    for child in children(pid):
        state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "Z":
            found.append(child)
    return found


def batch(start: int, count: int) -> list[Job]:
    return [
        Job("p", str(i), f"def add(a, b):  # {i}\n{BODIES[i % len(BODIES)]}", ADD) for i in range(start, start + count)
    ]


def assert_nothing_left_behind(pool: WorkerPool, cfg: SandboxConfig, inner: list[int]) -> None:
    import os

    assert worker_inner_pids(pool) == inner and pool.started_workers == 2  # the same two workers throughout
    assert all(children(pid) == [] for pid in inner), "a worker still has children after its batch"
    assert zombies_under(os.getpid()) == [] and all(zombies_under(pid) == [] for pid in inner)
    assert sandbox_processes(cfg) == []
