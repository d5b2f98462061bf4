"""Docker backend: wire protocol and container settings without an engine; real runs when one answers."""

import json

import pytest
from conftest import PROJECT_ROOT
from docker_checks import docker_or_skip

from sandbox.config import SandboxConfig, SandboxUnavailable
from sandbox.docker_backend import container_settings, engine_client
from sandbox.pool import run_batch
from sandbox.protocol import STDERR, STDOUT, DockerStreamDemux, LineDecoder, ProtocolError, docker_frame, encode
from sandbox.verdicts import Job


def test_multiplexed_frames_are_taken_apart_across_chunk_boundaries():
    stream = docker_frame(STDOUT, encode({"hello": {"mode": "container"}})) + docker_frame(STDERR, b"warning\n")
    stream += docker_frame(STDOUT, encode({"id": 0, "records": [{"ready": True}]}))
    demux, decoder, messages, errors = DockerStreamDemux(), LineDecoder(), [], b""
    for start in range(0, len(stream), 7):  # 7-byte chunks split headers and payloads
        for kind, data in demux.feed(stream[start : start + 7]):
            if kind == STDOUT:
                messages += decoder.feed(data)
            else:
                errors += data
    assert messages == [{"hello": {"mode": "container"}}, {"id": 0, "records": [{"ready": True}]}]
    assert errors == b"warning\n"


def test_a_corrupt_stream_is_a_protocol_error_not_a_verdict():
    with pytest.raises(ProtocolError, match="stream type 9"):
        DockerStreamDemux().feed(b"\x09\x00\x00\x00\x00\x00\x00\x01x")
    with pytest.raises(ProtocolError, match="not JSON"):
        LineDecoder().feed(b"PASSED\n")


def test_a_message_split_over_reads_decodes_once():
    decoder, line = LineDecoder(), encode({"id": 3, "stderr": "a\nb"})
    assert decoder.feed(line[:5]) == [] and decoder.feed(line[5:]) == [{"id": 3, "stderr": "a\nb"}]


def test_container_settings_lock_the_container_down():
    cfg = SandboxConfig(backend="docker", workdir_mb=32, docker_memory_mb=1024, docker_pids=64)
    settings = container_settings(cfg, slot=1)
    assert settings["network_mode"] == "none" and settings["read_only"] is True
    assert settings["cap_drop"] == ["ALL"] and "no-new-privileges" in settings["security_opt"]
    assert settings["user"] == "62001:62001" and settings["init"] is False  # slot 1's own unprivileged uid
    assert settings["mem_limit"] == settings["memswap_limit"] == "1024m" and settings["pids_limit"] == 64
    assert set(settings["tmpfs"]) == {"/tmp", "/tmp/work"} and "size=32m" in settings["tmpfs"]["/tmp/work"]
    assert settings["stdin_open"] is True and settings["tty"] is False  # jobs stream over the attached socket
    assert settings["command"][:2] == ["--slot", "1"] and settings["image"] == cfg.docker_image
    assert "volumes" not in settings and "privileged" not in settings
    json.dumps(settings)  # plain data: what the engine receives can be logged and compared


def test_the_image_runs_the_same_worker_program():

    dockerfile = (PROJECT_ROOT / "sandbox" / "Dockerfile").read_text()
    assert "worker.py" in dockerfile and "--isolation" in dockerfile and "container" in dockerfile
    assert "USER 65534" in dockerfile
    for module in ("confine.py", "protocol.py", "runner.py", "worker.py"):
        assert module in dockerfile


def test_docker_backend_reports_a_missing_engine_clearly():
    try:
        engine_client(timeout_s=2)
    except SandboxUnavailable as exc:
        assert "no Docker engine answered" in str(exc) or "docker SDK" in str(exc)
    else:
        pytest.skip("a Docker engine answers here")


def test_docker_backend_runs_jobs_in_long_lived_containers():
    cfg = SandboxConfig(backend="docker", workers=2, timeout_s=5)
    docker_or_skip(cfg)
    add = {"kind": "call", "fn_name": "add", "inputs": [[1, 2], [3, 4]], "outputs": [3, 7]}
    jobs = [Job("p", f"s{i}", f"def add(a, b):\n    return a + b  # {i}", add) for i in range(20)]
    jobs.append(
        Job(
            "p",
            "net",
            "import socket\ndef add(a, b):\n    socket.create_connection(('1.1.1.1', 53), 1)\n    return a + b",
            add,
        )
    )
    verdicts = run_batch(jobs, cfg)
    assert [v.status for v in verdicts[:20]] == ["passed"] * 20
    assert verdicts[20].status == "error"


def test_container_limits_apply_to_everything_a_solution_starts():
    """The container's memory and pids limits hold for a solution's processes together, where the
    per-process rlimits alone would let each child take its own share."""
    cfg = SandboxConfig(
        backend="docker", workers=1, timeout_s=8, memory_mb=400, processes=64, docker_memory_mb=600, docker_pids=40
    )
    client = docker_or_skip(cfg)
    hog = (
        "import os, time\n"
        "def add(a, b):\n"
        "    for _ in range(4):\n"  # four children of 300 MB each: within RLIMIT_AS, above the container's 600 MB
        "        if os.fork() == 0:\n"
        "            block = b'x' * (300 * 1024 * 1024)\n"
        "            time.sleep(3)\n"
        "            os._exit(0)\n"
        "    return sorted(os.wait()[1] for _ in range(4))\n"
    )  # wait statuses: 0 for a child that lived
    forks = (
        "import os, time\n"
        "def add(a, b):\n"
        "    count = 0\n"
        "    while True:\n"
        "        try:\n"
        "            if os.fork() == 0:\n"
        "                time.sleep(30)\n"
        "                os._exit(0)\n"
        "        except OSError:\n"
        "            return count\n"
        "        count += 1\n"
    )
    add = {"kind": "call", "fn_name": "add", "inputs": [[1, 2]], "outputs": [3]}
    counted = {"kind": "call", "fn_name": "add", "inputs": [[1, 2]], "outputs": [10_000]}
    all_lived = {"kind": "call", "fn_name": "add", "inputs": [[1, 2]], "outputs": [[0, 0, 0, 0]]}
    [memory, pids, after] = run_batch(
        [
            Job("p", "hog", hog, all_lived),
            Job("p", "forks", forks, counted),
            Job("p", "ok", "def add(a, b):\n    return a + b", add),
        ],
        cfg,
    )
    assert memory.status == "failed", memory  # the container's OOM killer took at least one child
    assert pids.status == "failed" and after.status == "passed", (pids, after)
    from sandbox.pool import pool_for

    limits = client.containers.get(pool_for(cfg).workers[0].container.id).attrs["HostConfig"]
    assert limits["Memory"] == 600 * 1024 * 1024 and limits["PidsLimit"] == 40


def test_a_container_that_dies_is_replaced_and_its_job_retried():
    import threading
    import time

    cfg = SandboxConfig(backend="docker", workers=1, timeout_s=10)
    client = docker_or_skip(cfg)
    from sandbox.pool import pool_for

    pool = pool_for(cfg).start()
    first = pool.workers[0].container
    slow = Job(
        "p",
        "slow",
        "import time\ndef add(a, b):\n    time.sleep(2)\n    return a + b",
        {"kind": "call", "fn_name": "add", "inputs": [[1, 2]], "outputs": [3]},
    )
    killer = threading.Timer(0.7, lambda: client.containers.get(first.id).kill())
    killer.start()
    started = time.monotonic()
    [verdict] = run_batch([slow], cfg, pool=pool)
    killer.join()
    assert verdict.status == "passed" and time.monotonic() - started > 2.5  # ran again after the kill
    second = pool.workers[0].container
    assert second.id != first.id and pool.started_workers == 2


def test_setup_without_root_says_what_is_missing(tmp_path):
    """As an unprivileged user (who cannot reach root's engine socket either) the setup names what
    it needs instead of half-installing anything."""
    import shutil
    import subprocess
    import sys

    if shutil.which("setpriv") is None or __import__("os").geteuid() != 0:
        pytest.skip("needs root and util-linux setpriv to run the command as another user")
    closed = [p for p in [PROJECT_ROOT, *PROJECT_ROOT.parents] if not p.stat().st_mode & 0o001]
    if closed:
        pytest.skip(
            f"{closed[0]} is closed to other users (mode {oct(closed[0].stat().st_mode & 0o777)}): "
            "an unprivileged user cannot import this checkout"
        )
    result = subprocess.run(
        [
            "setpriv",
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            sys.executable,
            "-m",
            "flows.cli",
            "sandbox",
            "setup-docker",
        ],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "needs root" in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_setup_again_finds_everything_in_place():
    cfg = SandboxConfig(backend="docker")
    docker_or_skip(cfg)
    from sandbox.docker_setup import setup_docker

    report = setup_docker(cfg.docker_image)
    assert [outcome.split(" ")[-1] for _, outcome, _ in report.steps] == [
        "answering",
        "built",
        "current",
    ]  # nothing rebuilt
