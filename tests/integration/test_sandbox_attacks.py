"""One adversarial test per property of the sandbox's threat model (``sandbox/__init__.py``).

Each test asserts that the harm did not happen (the canary is intact, the listener saw no
connection, no process of a sandbox uid is left), not merely that the run failed. Probes return
what they managed to do as strict JSON, which the host reads back.
"""

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import PROJECT_ROOT
from docker_checks import docker_or_skip
from process_checks import sandbox_processes

from sandbox.config import BACKENDS, SandboxConfig
from sandbox.pool import close_pools, pool_for, run_job
from sandbox.verdicts import Job, child_payload

LIMITS = {"timeout_s": 3.0, "memory_mb": 512, "workers": 2}
ADD = {"kind": "call", "fn_name": "add", "inputs": [[1, 2], [3, 4]], "outputs": [3, 7]}
# Expected values a solution cannot derive from the inputs: only the host knows them.
HIDDEN = {"kind": "call", "fn_name": "add", "inputs": [[1, 2], [3, 4]], "outputs": [1000003, 7000004]}
MB = 1024 * 1024


@pytest.fixture(params=BACKENDS)
def cfg(request):
    """The threat model holds on both backends: every test runs on the local one and on Docker
    (skipped, naming what is missing, where no engine answers)."""
    settings = SandboxConfig(backend=request.param, **LIMITS)
    if request.param == "local":
        yield settings
        return
    client = docker_or_skip(settings)
    before = {c.id for c in client.containers.list(filters={"label": "thinkflow.sandbox=worker"})}
    yield settings
    close_pools()  # this test's containers go now, not at exit, and none may stay behind
    left = {c.id for c in client.containers.list(all=True, filters={"label": "thinkflow.sandbox=worker"})} - before
    assert left == set(), f"sandbox containers left behind: {left}"


@pytest.fixture(autouse=True)
def nothing_left_behind(cfg):
    yield
    assert sandbox_processes(cfg) == [], "a solution's process outlived its run"


def probe(source: str, cfg: SandboxConfig):
    """Run ``source`` (which defines ``probe()``) and return what probe() returned."""
    job = Job("probe", "p", source, {"kind": "call", "fn_name": "probe", "inputs": [[]], "outputs": [None]})
    run = pool_for(cfg).execute([child_payload(job)])[0]
    answers = [r for r in run.records if r.get("t") == 0]
    assert answers, f"the probe returned nothing: {run.records} {run.stderr} timed_out={run.timed_out}"
    assert "v" in answers[0], f"the probe raised: {answers[0]}"
    return answers[0]["v"]


def verdict(code: str, cfg: SandboxConfig, tests=ADD):
    return run_job(Job("p", "s", code, tests), cfg)


# -- resources -------------------------------------------------------------------------------------


def test_infinite_loop_is_killed_at_the_wall_clock_limit(cfg):
    started = time.monotonic()
    v = verdict("def add(a, b):\n    while True:\n        pass", cfg)
    assert v.status == "timeout" and "wall-clock limit" in v.detail
    assert time.monotonic() - started < cfg.timeout_s + 2


def test_an_orphaned_spinning_child_is_killed(cfg):
    code = "import os\ndef add(a, b):\n    if os.fork() == 0:\n        while True:\n            pass\n    return a + b"
    assert verdict(code, cfg).status == "passed"
    # nothing_left_behind: the spinning grandchild is gone once the verdict is back


def test_fork_bomb_stops_at_the_process_limit(cfg):
    forked = probe(
        "import os, time\n"
        "def probe():\n"
        "    count = 0\n"
        "    for _ in range(2000):\n"
        "        try:\n"
        "            pid = os.fork()\n"
        "        except OSError:\n"
        "            break\n"
        "        if pid == 0:\n"
        "            time.sleep(60)\n"
        "            os._exit(0)\n"
        "        count += 1\n"
        "    return count\n",
        cfg,
    )
    assert forked < cfg.processes


def test_memory_bomb_stops_at_the_address_space_limit(cfg):
    allocated = probe(
        "def probe():\n"
        "    chunks = []\n"
        "    try:\n"
        "        while True:\n"
        "            chunks.append(bytearray(32 * 1024 * 1024))\n"
        "    except MemoryError:\n"
        "        return len(chunks) * 32\n",
        cfg,
    )
    assert allocated < cfg.memory_mb
    assert verdict("x = bytearray(8 * 1024**3)\ndef add(a, b):\n    return a + b", cfg).status == "memory"


def test_a_10_gb_file_stops_at_the_file_size_limit(cfg):
    written = probe(
        "def probe():\n"
        "    written, block = 0, b'x' * (1024 * 1024)\n"
        "    try:\n"
        "        with open('big.bin', 'wb', buffering=0) as handle:\n"
        "            for _ in range(10 * 1024):\n"
        "                written += handle.write(block)\n"
        "    except OSError as exc:\n"
        "        return [written, exc.errno]\n"
        "    return [written, 0]\n",
        cfg,
    )
    assert written[0] <= cfg.file_mb * MB and written[1] != 0


def test_many_16_mb_files_stop_at_the_workdir_size_and_are_wiped(cfg):
    written = probe(
        "def probe():\n"
        "    total, block = 0, b'x' * (15 * 1024 * 1024)\n"
        "    for index in range(1000):\n"
        "        try:\n"
        "            with open(f'f{index}.bin', 'wb') as handle:\n"
        "                handle.write(block)\n"
        "        except OSError:\n"
        "            break\n"
        "        total += len(block)\n"
        "    return total\n",
        cfg,
    )
    assert written <= cfg.workdir_mb * MB
    for _ in range(cfg.pool_size):  # every worker's workdir starts empty
        assert probe("import os\ndef probe():\n    return os.listdir('.')", cfg) == []


# -- filesystem, secrets, network ------------------------------------------------------------------


@pytest.fixture
def canary_dir():
    """A world-writable folder outside every hidden folder, with a world-writable canary and a
    root-only secret in it."""
    folder = Path(tempfile.mkdtemp(prefix="thinkflow-canary-", dir="/var/lib"))
    folder.chmod(0o777)
    canary = folder / "canary.txt"
    canary.write_text("alive")
    canary.chmod(0o666)
    secret = folder / "secret.txt"
    secret.write_text("hunter2-file")
    secret.chmod(0o600)
    yield folder
    shutil.rmtree(folder)


def test_a_canary_outside_the_workdir_cannot_be_deleted_or_overwritten(cfg, canary_dir):
    canary = canary_dir / "canary.txt"
    before = canary.stat()
    done = probe(
        "import os\n"
        "def probe():\n"
        f"    folder = {str(canary_dir)!r}\n"
        "    done = []\n"
        "    attempts = {\n"
        "        'overwrite': lambda: open(folder + '/canary.txt', 'w').write('dead'),\n"
        "        'append': lambda: open(folder + '/canary.txt', 'a').write('dead'),\n"
        "        'delete': lambda: os.remove(folder + '/canary.txt'),\n"
        "        'chmod': lambda: os.chmod(folder + '/canary.txt', 0o000),\n"
        "        'rename': lambda: os.rename(folder + '/canary.txt', folder + '/moved.txt'),\n"
        "        'create': lambda: open(folder + '/new.txt', 'w').write('x'),\n"
        "        'rmdir': lambda: os.rmdir(folder),\n"
        "    }\n"
        "    for name, attempt in attempts.items():\n"
        "        try:\n"
        "            attempt()\n"
        "            done.append(name)\n"
        "        except OSError:\n"
        "            pass\n"
        "    return done\n",
        cfg,
    )
    assert done == []
    assert canary.read_text() == "alive" and canary.stat().st_mtime == before.st_mtime
    assert sorted(p.name for p in canary_dir.iterdir()) == ["canary.txt", "secret.txt"]


def test_a_secret_file_cannot_be_read(cfg, canary_dir):
    seen = probe(
        "import os\n"
        "def probe():\n"
        "    seen = []\n"
        f"    for path in [{str(canary_dir / 'secret.txt')!r}, '/root/.bash_history', '/etc/shadow']:\n"
        "        try:\n"
        "            seen.append(open(path).read())\n"
        "        except OSError as exc:\n"
        "            seen.append(type(exc).__name__)\n"
        "    try:\n"
        "        seen.append(os.listdir('/root'))\n"
        "    except OSError as exc:\n"
        "        seen.append(type(exc).__name__)\n"
        "    return seen\n",
        cfg,
    )
    assert "hunter2-file" not in json.dumps(seen)
    if cfg.backend == "local":
        assert seen[0] == "PermissionError" and seen[-1] == [".pyenv"]  # /root is an empty tmpfs but for Python
    else:  # the host's files are not in the container at all; the image's /root is root's alone
        assert seen[0] == "FileNotFoundError" and seen[-1] == "PermissionError"


def test_secrets_in_the_environment_are_not_visible(cfg, monkeypatch):
    monkeypatch.setenv("THINKFLOW_TEST_SECRET", "hunter2-env")
    fresh = replace(cfg, timeout_s=3.5, workers=1)  # a pool started after the secret was set
    seen = probe(
        "import os\n"
        "def probe():\n"
        "    seen = [dict(os.environ)]\n"
        "    for pid in os.listdir('/proc'):\n"
        "        if pid.isdigit():\n"
        "            try:\n"
        "                seen.append(open(f'/proc/{pid}/environ', 'rb').read().decode())\n"
        "            except OSError as exc:\n"
        "                seen.append(type(exc).__name__)\n"
        "    return seen\n",
        fresh,
    )
    assert "hunter2-env" not in json.dumps(seen)
    assert set(seen[0]) == {"PATH", "HOME", "TMPDIR", "LANG"}


def test_no_tcp_connection_reaches_a_listener_on_localhost(cfg):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    try:
        outcome = probe(
            "import socket\n"  # noqa: UP031 (a script with its numbers filled in)
            "def probe():\n"
            "    out = []\n"
            "    for family, address in [(socket.AF_INET, ('127.0.0.1', %d)), (socket.AF_INET6, ('::1', %d))]:\n"
            "        try:\n"
            "            socket.socket(family).connect(address)\n"
            "            out.append('connected')\n"
            "        except OSError as exc:\n"
            "            out.append(type(exc).__name__)\n"
            "    return out\n" % (port, port),
            cfg,
        )
        with pytest.raises(socket.timeout):
            listener.accept()
    finally:
        listener.close()
    assert "connected" not in outcome


# -- processes -------------------------------------------------------------------------------------


def test_a_double_forked_daemon_does_not_outlive_the_run(cfg):
    code = (
        "import os, time\n"
        "def add(a, b):\n"
        "    if os.fork() == 0:\n"
        "        os.setsid()\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(60)\n"
        "        os._exit(0)\n"
        "    time.sleep(0.1)\n"
        "    return a + b\n"
    )
    assert verdict(code, cfg).status == "passed"
    # nothing_left_behind: checked right after the verdict


def test_killing_the_parent_does_not_stop_the_worker(cfg):
    pool = pool_for(cfg)
    verdict("def add(a, b):\n    return a + b", cfg)
    workers_before = pool.worker_pids()
    code = (
        "import os, signal\n"
        "def add(a, b):\n"
        "    for target in (os.getppid(), 1, -1):\n"
        "        for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):\n"
        "            try:\n"
        "                os.kill(target, sig)\n"
        "            except OSError:\n"
        "                pass\n"
        "    return a + b\n"
    )
    verdict(code, cfg)
    assert verdict("def add(a, b):\n    return a + b", cfg).status == "passed"
    assert pool.worker_pids() == workers_before and pool.started_workers == len(workers_before)


def test_a_solution_runs_with_no_new_privileges_under_the_seccomp_filter(cfg):
    outcome = probe(
        "def probe():\n"
        "    status = dict(line.split(':', 1) for line in open('/proc/self/status'))\n"
        "    return [status['NoNewPrivs'].strip(), status['Seccomp'].strip()]\n",
        cfg,
    )
    assert outcome == ["1", "2"]  # 2: a seccomp filter is active


def test_raising_an_rlimit_is_refused(cfg):
    outcome = probe(
        "import resource\n"  # noqa: UP031 (a script with its numbers filled in)
        "def probe():\n"
        "    out = []\n"
        "    try:\n"
        "        resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))\n"
        "        out.append('raised')\n"
        "    except (ValueError, OSError):\n"
        "        out.append('refused')\n"
        "    try:\n"
        "        block = bytearray(%d)\n"
        "        out.append('allocated')\n"
        "    except MemoryError:\n"
        "        out.append('memory error')\n"
        "    return out\n" % (2 * cfg.memory_mb * MB),
        cfg,
    )
    assert outcome == ["refused", "memory error"]


def test_a_stdout_and_stderr_flood_is_capped(cfg):
    capped = replace(cfg, output_cap_bytes=200_000)
    code = "import os, sys\ndef add(a, b):\n    for _ in range(400):\n        print('x' * 100_000)\n        sys.stderr.write('y' * 100_000)\n    return a + b"
    started = time.monotonic()
    v = verdict(code, capped)
    assert v.status == "error" and "output limit" in v.detail
    assert time.monotonic() - started < capped.timeout_s


def test_results_larger_than_the_cap_end_the_run_as_an_output_error(cfg):
    capped = replace(cfg, output_cap_bytes=200_000)
    tests = {"kind": "call", "fn_name": "add", "inputs": [[1, 2]] * 5, "outputs": [3] * 5}
    v = verdict("def add(a, b):\n    return 'z' * 60_000", capped, tests)
    assert v.status == "error" and v.detail == "output limit exceeded" and v.passed == 0


def test_the_strict_backend_refuses_to_run_without_namespaces(cfg):
    if cfg.backend != "local":
        pytest.skip("the local backend's own namespaces: the Docker backend gets them from the engine")
    if not shutil.which("unshare"):
        pytest.skip("needs util-linux unshare to drop our own privileges")
    script = (
        "from sandbox.config import SandboxConfig, SandboxUnavailable\nfrom sandbox.pool import run_job\nfrom sandbox.verdicts import Job\n"
        "job = Job('p', 's', 'def add(a, b):\\n    return a + b', "
        "{'kind': 'call', 'fn_name': 'add', 'inputs': [[1, 2]], 'outputs': [3]})\n"
        "try:\n"
        "    run_job(job, SandboxConfig(workers=1))\n"
        "    print('RAN')\n"
        "except SandboxUnavailable as exc:\n"
        "    print('REFUSED', exc)\n"
        "print('WEAK', run_job(job, SandboxConfig(workers=1, isolation='weak')).status)\n"
    )
    # a user namespace without capabilities: unshare of mount/pid/net namespaces is not permitted
    result = subprocess.run(
        ["unshare", "--user", sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=120,
    )
    assert "REFUSED the local sandbox could not isolate its worker" in result.stdout, result.stdout + result.stderr
    assert "sandbox.isolation: weak" in result.stdout
    assert "WEAK passed" in result.stdout


# -- reward hacks ----------------------------------------------------------------------------------

# Solution code that writes raw bytes into the child's own results channel (the shared region its
# Reporter appends to), as a solution that went looking for it would.
FORGE = (
    "import gc\n"
    "def forge(data):\n"
    "    reporter = [o for o in gc.get_objects() if type(o).__name__ == 'Reporter'][0]\n"
    "    end = reporter.end + len(data)\n"
    "    reporter.region[reporter.end:end] = data\n"
    "    reporter.region[0:8] = end.to_bytes(8, 'little')\n"
    "    reporter.end = end\n"
)


@pytest.mark.parametrize("exit_call", ["import sys\nsys.exit(0)", "import os\nos._exit(0)", "raise SystemExit(0)"])
def test_exiting_before_the_tests_is_not_a_pass(cfg, exit_call):
    v = verdict(exit_call + "\ndef add(a, b):\n    return a + b", cfg)
    assert v.status != "passed" and v.passed == 0


def test_printing_and_writing_pass_markers_is_not_a_pass(cfg):
    code = (
        "import os\n"
        "print('PASSED', 'ok', 'all tests passed')\n"
        + FORGE
        + 'marker = b\'{"t": 0, "v": 1000003}\\n{"t": 1, "v": true}\\n{"done": true}\\n\'\n'
        "for fd in (1, 2):\n"
        "    os.write(fd, marker)\n"
        "forge(marker)\n"
        "def add(a, b):\n    return None\n"
    )
    v = verdict(code, cfg, HIDDEN)
    # the forged records reach the host as the solution's own answers: the lucky guess for test 0
    # counts, the marker for test 1 is a wrong answer, and the run is not a pass
    assert v.status == "failed" and v.passed == 1


def test_stealing_a_nonce_from_proc_self_is_not_a_pass(cfg):
    code = (
        "import os\n"
        "loot = [open('/proc/self/cmdline', 'rb').read()]\n"
        "for path in ['/proc/self/environ'] + [f'/proc/self/fd/{fd}' for fd in range(8)]:\n"
        "    try:\n"
        "        loot.append(open(path, 'rb').read(200) if path.endswith('environ') else os.readlink(path))\n"
        "    except OSError as exc:\n"
        "        loot.append(type(exc).__name__)\n" + FORGE + "forge((repr(loot) + '\\n').encode())\n"
        "def add(a, b):\n    return repr(loot)\n"
    )
    v = verdict(code, cfg, HIDDEN)
    assert v.status == "failed" and v.passed == 0


def test_a_solution_cannot_read_what_an_earlier_solution_reported(cfg):
    """Answers of an earlier run (say, a correct sample of the same problem) must not be left where
    the next solution in that worker could copy them."""
    one_worker = replace(cfg, timeout_s=5.0, workers=1)
    honest = "def add(a, b):\n    return 'EARLIER-ANSWER-' + str(a + b)"
    assert verdict(honest, one_worker).status == "failed"
    snooper = (
        "import gc, mmap\n"
        "def probe():\n"
        "    reporter = [o for o in gc.get_objects() if type(o).__name__ == 'Reporter'][0]\n"
        "    regions = [o for o in gc.get_objects() if isinstance(o, mmap.mmap)]\n"
        "    found = [bytes(r).find(b'EARLIER-ANSWER') for r in regions + [reporter.region]]\n"
        "    return [len(regions), found]\n"
    )
    outcome = probe(snooper, one_worker)
    assert outcome[1] == [-1] * (outcome[0] + 1)


def test_an_object_whose_eq_is_always_true_is_rejected(cfg):
    code = "class Eq(int):\n    def __eq__(self, other): return True\n    __hash__ = int.__hash__\ndef add(a, b):\n    return Eq(0)"
    v = verdict(code, cfg, HIDDEN)
    assert v.status == "error" and "not a built-in JSON type" in v.detail


def test_walking_frames_to_write_the_harness_results_is_not_a_pass(cfg):
    code = (
        "import sys\n"
        "def add(a, b):\n"
        "    frame = sys._getframe(1)\n"
        "    while frame is not None:\n"
        "        for value in list(frame.f_locals.values()):\n"
        "            if hasattr(value, 'send'):\n"
        "                for index in range(2):\n"
        "                    value.send({'t': index, 'v': True})\n"
        "                value.send({'done': True})\n"
        "            if isinstance(value, list):\n"
        "                value[:] = [True] * len(value)\n"
        "        frame = frame.f_back\n"
        "    return True\n"
    )
    v = verdict(code, cfg, HIDDEN)
    assert v.status == "failed" and v.passed == 0


def test_reading_the_expected_value_from_frames_or_source_is_not_a_pass(cfg):
    code = (
        "import gc, sys\n"
        "def add(a, b):\n"
        "    found = []\n"
        "    frame = sys._getframe(1)\n"
        "    while frame is not None:\n"
        "        found += [v for v in list(frame.f_locals.values()) + list(frame.f_globals.values()) if type(v) is int]\n"
        "        try:\n"
        "            found += [int(w) for w in open(frame.f_code.co_filename).read().split() if w.isdigit()]\n"
        "        except OSError:\n"
        "            pass\n"
        "        frame = frame.f_back\n"
        "    found += [o for o in gc.get_objects() if type(o) is list for o in o if type(o) is int]\n"
        "    return max(found)\n"
    )
    v = verdict(code, cfg, HIDDEN)
    assert v.status == "failed" and v.passed == 0


def test_atexit_tricks_are_not_a_pass(cfg):
    code = (
        "import atexit, os, sys\n"
        + FORGE
        + 'atexit.register(lambda: forge(b\'{"t": 0, "v": 1000003}\\n{"t": 1, "v": 7000004}\\n\'))\n'
        "atexit.register(lambda: os._exit(0))\n"
        "def add(a, b):\n    sys.exit(0)\n"
    )
    v = verdict(code, cfg, HIDDEN)
    assert v.status != "passed" and v.passed == 0


def test_forged_results_cannot_pass_a_recorded_humaneval_problem(cfg):
    """A check() test recorded into call tests: forging 'the asserts passed' gains nothing."""
    from sandbox.reference import convert_tests
    from tasks.problems.bundled import load_humaneval

    problem = load_humaneval().problems[2]  # truncate_number: floats
    [conversion] = convert_tests([(problem["tests"], problem["reference"])], cfg)
    forged = (
        FORGE + "for index in range(50):\n"
        '    forge((\'{"t": %d, "v": true}\\n\' % index).encode())\n'
        "def truncate_number(number):\n    return True\n"
    )
    v = run_job(Job(problem["id"], "forged", forged, conversion.tests), cfg)
    assert conversion.converted and v.status == "failed" and v.passed == 0
