"""Docker backend: wire protocol and container settings without an engine; real runs when one answers."""

import json

import pytest
from conftest import PROJECT_ROOT

from sandbox import Job, SandboxConfig, SandboxUnavailable, run_batch
from sandbox.docker_backend import container_settings, engine_client
from sandbox.protocol import STDERR, STDOUT, DockerStreamDemux, LineDecoder, ProtocolError, docker_frame, encode


def test_multiplexed_frames_are_taken_apart_across_chunk_boundaries():
    stream = docker_frame(STDOUT, encode({"hello": {"mode": "container"}})) + docker_frame(STDERR, b"warning\n")
    stream += docker_frame(STDOUT, encode({"id": 0, "records": [{"ready": True}]}))
    demux, decoder, messages, errors = DockerStreamDemux(), LineDecoder(), [], b""
    for start in range(0, len(stream), 7):  # 7-byte chunks split headers and payloads
        for kind, data in demux.feed(stream[start:start + 7]):
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
    assert settings["user"].split(":")[0] != "0" and settings["init"] is False
    assert settings["mem_limit"] == settings["memswap_limit"] == "1024m" and settings["pids_limit"] == 64
    assert set(settings["tmpfs"]) == {"/tmp"} and "size=64m" in settings["tmpfs"]["/tmp"]
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


def docker_or_skip(cfg: SandboxConfig):
    """An engine with the sandbox image, or a skip that names what this machine lacks: no engine,
    or an engine that cannot build the image (its base comes from a registry that is out of reach
    here; the offline build is ``thinkflow sandbox setup-docker``'s job)."""
    from sandbox.docker_backend import ensure_image

    try:
        client = engine_client(timeout_s=2)
    except SandboxUnavailable as exc:
        pytest.skip(f"no Docker engine here, so the container path cannot run: {exc}")
    try:
        ensure_image(client, cfg.docker_image)
    except SandboxUnavailable as exc:
        pytest.skip(f"a Docker engine answers but the sandbox image {cfg.docker_image} is not there and cannot be built here: "
                    f"{str(exc)[:300]}")
    return client


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
    jobs.append(Job("p", "net", "import socket\ndef add(a, b):\n    socket.create_connection(('1.1.1.1', 53), 1)\n    return a + b", add))
    verdicts = run_batch(jobs, cfg)
    assert [v.status for v in verdicts[:20]] == ["passed"] * 20
    assert verdicts[20].status == "error"
