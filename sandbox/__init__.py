"""Untrusted-code execution for rewards and evaluation (v0: the walking skeleton's backend).

What a verdict means: for ``call`` and ``stdio`` tests, every test case returned, as strict JSON
of exact built-in types, a value that equals the expected one; the comparison happens in the
parent, and expected values never enter the untrusted process. Exit codes, printed markers and
the child's own claims decide nothing. ``check`` (HumanEval) and ``assert`` (MBPP) tests still run
their assertions inside the child, on return values copied to exact built-in types; a solution
that can forge a result record on the result pipe can fake those (issue 3 converts them to
``call`` form by recording the reference solution's calls).

What v0 isolates: each solution runs in a fresh ``python -I`` process in its own session and
process group, in a private temp workdir that is deleted afterwards, with a clean environment
(no secrets inherited), rlimits on address space, CPU time, file size and open files, stdin
closed, stdout discarded, stderr and results capped, and a wall-clock kill of the whole process
group. What v0 does NOT isolate (issue 3): network access, the filesystem outside the workdir
(it runs as the calling user), processes that leave the group with ``setsid``, fork bombs when
run as root (``RLIMIT_NPROC`` does not bind root). Do not run it on a machine holding secrets.

This package is a leaf: it imports nothing from flows/, tasks/ or storage/.
"""

from sandbox.local import SandboxConfig, run_batch, run_job
from sandbox.verdicts import STATUSES, Job, TestSpecError, Verdict, count_tests

__all__ = ["Job", "Verdict", "SandboxConfig", "TestSpecError", "STATUSES", "run_batch", "run_job", "count_tests"]
