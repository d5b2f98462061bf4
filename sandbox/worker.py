"""The sandbox worker: a long-lived process that runs one solution at a time, each in a fresh fork.

Started by the host (``python -I -B worker.py --slot N --isolation MODE``), it reads jobs from
stdin and answers on stdout (``protocol.py``). Modes:

* ``namespaces`` (local backend): unshare mount/pid/net/ipc/uts namespaces and fork; the worker
  proper is pid 1 of its pid namespace (every orphan comes back to it), sees a private /proc,
  tmpfs over /tmp and the home/runtime folders, and a read-only view of the rest. Each solution
  runs as uid ``base_uid + slot`` in a fresh tmpfs workdir.
* ``weak`` (local backend, only when the config allows it): no namespaces; the worker is a child
  subreaper and, as root, still drops each solution to the slot uid.
* ``container`` (Docker backend): the container supplies the namespaces and the non-root user.

Per solution: fork, setsid, only fds 0-2, rlimits, uid drop, no_new_privs, seccomp; kill the
process group at the wall-clock limit; kill and reap every other process left behind; wipe the
workdir. The child writes its records into a shared memory region (``runner.Reporter``), so a
test case costs no syscall and no wake-up here; the worker reads them once every process of the
run is gone and relays them to the host, which decides the verdict.
"""

import gc
import json
import mmap
import os
import select
import shutil
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import confine  # noqa: E402
import protocol  # noqa: E402
import runner  # noqa: E402

# Modules the problem preludes import, loaded once here so each fork starts warm. Every module
# loaded here makes each fork and exit dearer (more page tables to copy and tear down).
PRELOADED = ("math", "itertools", "collections", "functools", "heapq", "bisect", "re", "string", "typing", "operator")
JOB_DIR = "/tmp/work"


def isolation_report(mode: str, uid: int | None, seccomp, problems: list[str]) -> dict:
    return {
        "mode": mode,
        "namespaces": mode in ("namespaces", "container"),
        "uid_drop": uid is not None or os.getuid() != 0,
        "seccomp": seccomp is not None,
        "uid": uid if uid is not None else os.getuid(),
        "missing": problems,
    }


class Worker:
    def __init__(self, mode: str, uid: int | None, workdir_mb: int):
        self.mode, self.uid = mode, uid
        if mode == "namespaces":
            os.makedirs(JOB_DIR, exist_ok=True)
            confine.fresh_workdir(JOB_DIR, workdir_mb, uid)
        program = confine.seccomp_program()
        self.seccomp = confine.SeccompFilter(program) if program else None
        self.is_init = os.getpid() == 1
        self.out = sys.stdout.buffer
        self.region = None  # the results region, made at the first run (its size is the output cap)

    def send(self, message: dict) -> None:
        self.out.write(protocol.encode(message))
        self.out.flush()

    # -- one solution ------------------------------------------------------------------------

    def prepare_workdir(self) -> str:
        if self.mode == "namespaces":
            return JOB_DIR  # one tmpfs, sized for one solution, mounted at start and wiped after each
        if self.mode == "container":
            os.makedirs(JOB_DIR, mode=0o700, exist_ok=True)
            return JOB_DIR
        import tempfile

        path = tempfile.mkdtemp(prefix="thinkflow-sbx-")
        if self.uid is not None:
            os.chown(path, self.uid, self.uid)
        return path

    def wipe_workdir(self, path: str) -> None:
        if self.mode in ("namespaces", "container"):
            for entry in os.listdir(path):
                target = os.path.join(path, entry)
                if os.path.isdir(target) and not os.path.islink(target):
                    shutil.rmtree(target, onerror=make_removable)
                else:
                    os.unlink(target)
        else:
            shutil.rmtree(path, onerror=make_removable)

    def results_region(self, size: int) -> mmap.mmap:
        """The region a child writes its records into, emptied before each run: its pages are
        given back, so they read as zeros and no solution sees what an earlier one wrote there
        (another solution's answers to the same tests)."""
        size = max(size, runner.RESULTS_HEADER + mmap.PAGESIZE)
        if self.region is None or len(self.region) != size:
            if self.region is not None:
                self.region.close()
            self.region = mmap.mmap(-1, size, mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)
        self.region.madvise(mmap.MADV_REMOVE)
        return self.region

    def run(self, message: dict) -> dict:
        job, limits = message["job"], message["limits"]
        started = time.monotonic()
        workdir = self.prepare_workdir()
        region = self.results_region(message["output_cap"])
        err_r, err_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(err_r)
                confine.confine_child(
                    err_w, workdir, limits, self.uid, cap_processes=self.uid is not None or self.mode == "container"
                )
            except BaseException as exc:  # noqa: BLE001 - report, never run the solution unconfined
                try:
                    runner.Reporter(region).send({"confine_error": f"{type(exc).__name__}: {exc}"})
                finally:
                    os._exit(70)
            runner.execute({**job, "limits": limits}, region)
        os.close(err_w)
        try:
            stderr, timed_out, capped = self.collect(pid, err_r, started + message["timeout_s"], message["output_cap"])
        finally:
            os.close(err_r)
            returncode = self.end_everything(pid)
            self.wipe_workdir(workdir)
        records, overflowed = runner.read_results(region)  # relayed as written; the host parses them
        return {
            "id": message["id"],
            "records": records,
            "stderr": stderr.decode(errors="replace"),
            "timed_out": timed_out,
            "capped": capped or overflowed,
            "returncode": returncode,
            "seconds": time.monotonic() - started,
        }

    def collect(self, pid: int, err_fd: int, deadline: float, cap: int):
        """Wait for the child to exit, reading its stderr, until the deadline or the output cap."""
        poller = select.poll()
        pidfd = os.pidfd_open(pid)
        stderr = bytearray()
        poller.register(err_fd, select.POLLIN)
        poller.register(pidfd, select.POLLIN)
        err_open, exited = True, False
        timed_out = capped = False
        try:
            while err_open or not exited:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    timed_out = True
                    break
                if exited:
                    remaining = min(remaining, 0.05)  # drain what the dead child left in the pipe
                events = poller.poll(remaining * 1000)
                if not events and exited:
                    break
                for fd, _ in events:
                    if fd == pidfd:
                        exited = True
                        poller.unregister(pidfd)
                        continue
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        poller.unregister(fd)
                        err_open = False
                        continue
                    stderr += chunk
                if len(stderr) > cap:
                    capped = True
                    break
        finally:
            os.close(pidfd)
        return bytes(stderr[-2000:]), timed_out, capped

    def end_everything(self, pid: int) -> int | None:
        """Kill the solution's group and every process it left anywhere; reap them all."""
        try:
            os.killpg(pid, signal.SIGKILL)  # the child is a session leader: it cannot leave its group
        except (ProcessLookupError, PermissionError):
            pass
        _, status = os.waitpid(pid, 0)
        if self.is_init:
            try:
                os.kill(-1, signal.SIGKILL)  # pid 1 of a namespace: everyone else in it
            except ProcessLookupError:
                pass
        else:
            if self.uid is not None:
                sweeper = os.fork()
                if sweeper == 0:
                    try:
                        os.setuid(self.uid)
                        os.kill(-1, signal.SIGKILL)  # every process of the slot uid but this one
                    finally:
                        os._exit(0)
            kill_descendants()
        while True:
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                break
        return os.waitstatus_to_exitcode(status)

    def serve(self) -> None:
        stdin = sys.stdin.buffer
        while True:
            line = stdin.readline()
            if not line.strip():
                return
            message = json.loads(line)
            if message.get("quit"):
                return
            self.send(self.run(message))


def make_removable(function, path, _exc) -> None:
    """rmtree's error hook: a folder the solution locked (mode 000) is opened up and retried."""
    os.chmod(os.path.dirname(path), 0o700)
    if os.path.isdir(path) and not os.path.islink(path):
        os.chmod(path, 0o700)
    function(path)


def descendants() -> list[int]:
    found, frontier = [], [os.getpid()]
    while frontier:
        pid = frontier.pop()
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as handle:
                children = [int(c) for c in handle.read().split()]
        except OSError:
            continue
        found += children
        frontier += children
    return found


def kill_descendants() -> None:
    """Without a pid namespace: kill whatever the solution left below us (orphans come to us as
    the subreaper), until nothing is left."""
    for _ in range(1000):
        pids = descendants()
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        while True:
            try:
                reaped, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if not reaped:
                break


def start_namespaces(tmp_mb: int) -> None:
    """Enter new namespaces; the launcher stays behind as the waiting parent of the worker."""
    confine.enter_namespaces()
    pid = os.fork()
    if pid:
        signal.signal(signal.SIGTERM, lambda *_: os.kill(pid, signal.SIGKILL))
        _, status = os.waitpid(pid, 0)
        os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
    confine.die_with_parent()  # (the launcher is outside our pid namespace: getppid() says 0)
    keep = sorted({sys.base_prefix, sys.prefix, os.path.dirname(os.path.abspath(__file__))})
    confine.build_mount_view(tmp_mb, keep)


class Arguments:
    slot, isolation, base_uid, workdir_mb = 0, "", 61000, 64


def parse_arguments(argv: list[str]) -> Arguments:
    """``--slot N --isolation MODE [--base-uid N] [--workdir-mb N]`` (no argparse: every module the
    worker imports is copied into each fork and torn down at each exit)."""
    args, pairs = Arguments(), dict(zip(argv[::2], argv[1::2]))
    for flag in pairs:
        if flag not in ("--slot", "--isolation", "--base-uid", "--workdir-mb"):
            raise SystemExit(f"worker.py: unknown option {flag}")
    args.slot = int(pairs.get("--slot", 0))
    args.base_uid = int(pairs.get("--base-uid", 61000))
    args.workdir_mb = int(pairs.get("--workdir-mb", 64))
    args.isolation = pairs.get("--isolation", "")
    if args.isolation not in ("namespaces", "weak", "container"):
        raise SystemExit("worker.py: --isolation must be namespaces, weak or container")
    return args


def main() -> None:
    args = parse_arguments(sys.argv[1:])
    for name in PRELOADED:
        __import__(name)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a namespace's pid 1, ignored signals cannot reach us
    confine.prctl(confine.PR_SET_DUMPABLE, 0)  # no /proc/<worker>/mem or ptrace for same-uid children
    root = os.getuid() == 0
    uid = args.base_uid + args.slot if root and args.isolation != "container" else None
    problems = []
    try:
        if args.isolation == "namespaces":
            start_namespaces(tmp_mb=16)
        else:
            confine.become_subreaper()
    except OSError as exc:
        sys.stdout.buffer.write(protocol.encode({"fatal": f"{exc}"}))
        sys.stdout.buffer.flush()
        os._exit(3)
    if uid is None and args.isolation != "container":
        problems.append("not running as root, so solutions cannot be moved to an unprivileged uid")
    if args.isolation != "weak":
        os.environ.clear()
        os.environ.update(confine.child_environment(JOB_DIR))
    worker = Worker(args.isolation, uid, args.workdir_mb)
    if worker.seccomp is None:
        problems.append("no seccomp filter for this architecture")
    confine.forbid_new_privileges()  # inherited by every child
    if worker.seccomp is not None:
        worker.seccomp.install()  # inherited by every child; nothing the worker does afterwards is denied
    worker.send({"hello": isolation_report(args.isolation, uid, worker.seccomp, problems)})
    gc.freeze()  # forked children never walk the worker's own objects
    worker.serve()


if __name__ == "__main__":
    main()
