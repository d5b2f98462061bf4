"""Isolation primitives for the sandbox worker (Linux only; imports nothing from the project).

A worker calls ``enter_namespaces`` once (new mount, pid, network, ipc and uts namespaces), then,
as pid 1 of its pid namespace, ``build_mount_view``: a private fresh /proc, an empty tmpfs over /tmp
and over the home and runtime folders (with the Python installation put back), and a read-only
view of every other mount. Per solution, the forked child calls ``confine_child``: its own
session, only the fds it needs, rlimits, an unprivileged uid, no new privileges and a seccomp
filter. Everything here raises ``ConfinementError`` naming what failed.
"""

import ctypes
import errno
import os
import resource
import struct

MB = 1024 * 1024

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWTIME = 0x00000080
NAMESPACE_FLAGS = (
    CLONE_NEWNS
    | CLONE_NEWUTS
    | CLONE_NEWIPC
    | CLONE_NEWUSER
    | CLONE_NEWPID
    | CLONE_NEWNET
    | CLONE_NEWCGROUP
    | CLONE_NEWTIME
)

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
MOUNT_OPTION_FLAGS = {"ro": MS_RDONLY, "nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC}

PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP = 1, 4, 36, 38, 22
SECCOMP_MODE_FILTER = 2

# Folders hidden behind an empty tmpfs inside the worker's mount namespace.
HIDDEN_FOLDERS = ("/root", "/home", "/var/tmp", "/run", "/dev/shm", "/mnt", "/media", "/srv")

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]


class ConfinementError(OSError):
    """An isolation step failed; the message names the step."""


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise ConfinementError(code, f"{what}: {os.strerror(code)}")


def _bytes(value):
    return None if value is None else os.fsencode(value)


def mount(source, target, fstype, flags, data=None) -> None:
    _check(_libc.mount(_bytes(source), _bytes(target), _bytes(fstype), flags, _bytes(data)), f"mount {target}")


def unmount(target: str) -> None:
    _check(_libc.umount2(os.fsencode(target), MNT_DETACH), f"umount {target}")


def prctl(option: int, arg: int = 0) -> None:
    _check(_libc.prctl(option, arg, 0, 0, 0), f"prctl({option})")


def enter_namespaces() -> None:
    """Unshare mount, pid, network, ipc and uts namespaces (needs root or CAP_SYS_ADMIN)."""
    flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
    _check(_libc.unshare(flags), "unshare(mount, pid, net, ipc, uts namespaces)")


def become_subreaper() -> None:
    """Orphans of our children are re-parented to us, so every one is reaped here."""
    prctl(PR_SET_CHILD_SUBREAPER, 1)


def forbid_new_privileges() -> None:
    """no_new_privs for this process and everything it forks: no setuid binary raises a child."""
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def die_with_parent() -> None:
    import signal

    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _mount_points() -> list[tuple[str, set[str]]]:
    points = []
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            fields = line.split()
            target = fields[4].encode().decode("unicode_escape")
            points.append((target, set(fields[5].split(","))))
    return points


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def build_mount_view(tmp_mb: int, keep_visible: list[str]) -> None:
    """Make this mount namespace private, hide secrets and make everything else read-only.

    ``keep_visible``: folders (the Python installation) that must stay readable even when they
    sit inside a hidden folder; they are bind-mounted back, read-only.
    """
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={tmp_mb}m,mode=0755")
    staged = []
    for index, folder in enumerate(keep_visible):
        if any(_inside(folder, hidden) for hidden in HIDDEN_FOLDERS) and os.path.isdir(folder):
            stage = f"/tmp/.keep{index}"
            os.mkdir(stage)
            mount(folder, stage, None, MS_BIND | MS_REC)
            staged.append((stage, folder))
    for hidden in HIDDEN_FOLDERS:
        if os.path.isdir(hidden) and not os.path.islink(hidden):
            mount("tmpfs", hidden, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    for stage, folder in staged:
        os.makedirs(folder, mode=0o755, exist_ok=True)
        mount(stage, folder, None, MS_BIND | MS_REC)
        unmount(stage)
        os.rmdir(stage)
    writable = ("/proc", "/tmp", "/dev")
    for target, options in _mount_points():
        if any(_inside(target, w) for w in writable) and not _inside(target, "/dev/shm"):
            continue
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY
        for name, flag in MOUNT_OPTION_FLAGS.items():
            if name in options:
                flags |= flag
        try:
            mount(None, target, None, flags)
        except ConfinementError as exc:
            if exc.errno not in (errno.EINVAL, errno.ENOENT, errno.EACCES):
                raise


def fresh_workdir(path: str, size_mb: int, uid: int) -> None:
    """A new, empty tmpfs for one solution (wiped by unmounting it afterwards)."""
    mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, f"size={size_mb}m,mode=0700,uid={uid},gid={uid}")


# -- seccomp ---------------------------------------------------------------------------------------

AUDIT_ARCH_X86_64 = 0xC000003E
SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_ERRNO, SECCOMP_RET_ALLOW = 0x80000000, 0x00050000, 0x7FFF0000
BPF_LD_W_ABS, BPF_JEQ_K, BPF_JSET_K, BPF_JGE_K, BPF_RET_K = 0x20, 0x15, 0x45, 0x35, 0x06

# x86_64 syscalls a solution never needs and that widen the attack surface.
X86_64_DENIED = {
    "ptrace": 101,
    "syslog": 103,
    "personality": 135,
    "pivot_root": 155,
    "chroot": 161,
    "acct": 163,
    "mount": 165,
    "umount2": 166,
    "swapon": 167,
    "swapoff": 168,
    "reboot": 169,
    "init_module": 175,
    "delete_module": 176,
    "kexec_load": 246,
    "add_key": 248,
    "request_key": 249,
    "keyctl": 250,
    "unshare": 272,
    "perf_event_open": 298,
    "name_to_handle_at": 303,
    "open_by_handle_at": 304,
    "setns": 308,
    "process_vm_readv": 310,
    "process_vm_writev": 311,
    "finit_module": 313,
    "kexec_file_load": 320,
    "bpf": 321,
    "userfaultfd": 323,
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
    "open_tree": 428,
    "move_mount": 429,
    "fsopen": 430,
    "fsconfig": 431,
    "fsmount": 432,
    "fspick": 433,
    "mount_setattr": 442,
}
X86_64_SOCKET, X86_64_CLONE, X86_64_CLONE3 = 41, 56, 435
AF_UNIX = 1


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)


def seccomp_program() -> bytes | None:
    """A BPF filter (x86_64 only; None elsewhere): deny the syscalls above, sockets other than
    AF_UNIX, clone with namespace flags, and clone3 (ENOSYS, so libc falls back to clone)."""
    if os.uname().machine != "x86_64":
        return None
    eperm = SECCOMP_RET_ERRNO | errno.EPERM
    prog = [
        _insn(BPF_LD_W_ABS, 0, 0, 4),  # arch
        _insn(BPF_JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
        _insn(BPF_RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS),
        _insn(BPF_LD_W_ABS, 0, 0, 0),  # syscall number
        _insn(BPF_JGE_K, 0, 1, 0x40000000),  # x32 ABI
        _insn(BPF_RET_K, 0, 0, eperm),
    ]
    for number in sorted(X86_64_DENIED.values()):
        prog += [_insn(BPF_JEQ_K, 0, 1, number), _insn(BPF_RET_K, 0, 0, eperm)]
    prog += [_insn(BPF_JEQ_K, 0, 1, X86_64_CLONE3), _insn(BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | errno.ENOSYS)]
    prog += [  # socket(domain, ...): AF_UNIX only
        _insn(BPF_JEQ_K, 0, 4, X86_64_SOCKET),
        _insn(BPF_LD_W_ABS, 0, 0, 16),
        _insn(BPF_JEQ_K, 0, 1, AF_UNIX),
        _insn(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW),
        _insn(BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | errno.EACCES),
    ]
    namespace_flags = NAMESPACE_FLAGS
    prog += [  # clone(flags, ...): no new namespaces
        _insn(BPF_JEQ_K, 0, 4, X86_64_CLONE),
        _insn(BPF_LD_W_ABS, 0, 0, 16),
        _insn(BPF_JSET_K, 0, 1, namespace_flags),
        _insn(BPF_RET_K, 0, 0, eperm),
        _insn(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW),
    ]
    prog.append(_insn(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW))
    return b"".join(prog)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class SeccompFilter:
    """A filter built once in the worker; installing it in each child is one prctl call."""

    def __init__(self, program: bytes):
        self.buffer = ctypes.create_string_buffer(program, len(program))
        self.fprog = _SockFprog(len(program) // 8, ctypes.cast(self.buffer, ctypes.c_void_p))
        self.address = ctypes.addressof(self.fprog)

    def install(self) -> None:
        prctl(PR_SET_NO_NEW_PRIVS, 1)
        _check(_libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, self.address, 0, 0), "seccomp filter")


# -- per solution ----------------------------------------------------------------------------------


def apply_rlimits(limits: dict, cap_processes: bool) -> None:
    pairs = [
        (resource.RLIMIT_AS, limits["memory_mb"] * MB),
        (resource.RLIMIT_CPU, limits["cpu_s"]),
        (resource.RLIMIT_FSIZE, limits["file_mb"] * MB),
        (resource.RLIMIT_NOFILE, limits["open_files"]),
        (resource.RLIMIT_CORE, 0),
    ]
    if cap_processes:
        pairs.append((resource.RLIMIT_NPROC, limits["processes"]))
    for which, value in pairs:
        resource.setrlimit(which, (value, value))


def child_environment(workdir: str) -> dict:
    return {"PATH": "/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8"}


def confine_child(stderr_fd: int, workdir: str, limits: dict, uid: int | None, cap_processes: bool) -> None:
    """Called in the freshly forked child, before any untrusted code runs. Keeps fds 0-2:
    /dev/null, /dev/null and the stderr pipe. The worker's seccomp filter and no_new_privs are
    inherited (no ctypes call here: each one would touch, and so copy, more of the worker's pages).
    ``cap_processes``: RLIMIT_NPROC counts every process of the uid, so it is set only where the uid
    is the slot's own (dropped to here, or the container's per-slot user)."""
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for target, source in ((0, devnull), (1, devnull), (2, stderr_fd)):
        os.dup2(source, target)
    os.closerange(3, 1 << 16)
    os.chdir(workdir)
    apply_rlimits(limits, cap_processes=cap_processes)
    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    wanted = child_environment(workdir)
    if os.environ != wanted:  # the worker already runs with this environment when its workdir is fixed
        os.environ.clear()
        os.environ.update(wanted)
