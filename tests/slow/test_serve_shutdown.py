"""`thinkflow serve` on SIGTERM stops its worker, then its server, and leaves no process behind
(~20 s on 2 cores; the deployment test in integration/ starts and stops the same LocalPrefect)."""

import subprocess
import urllib.request

import pytest
from conftest import PROJECT_ROOT, free_port


def test_thinkflow_serve_stops_worker_and_server_on_sigterm(tmp_path):
    import os
    import signal
    import sys
    from pathlib import Path

    (tmp_path / "prefect").mkdir()
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "THINKFLOW_HOME": str(tmp_path / "home")}
    env.pop("PREFECT_API_URL", None)
    port = free_port()
    serve = subprocess.Popen(
        [str(Path(sys.executable).with_name("thinkflow")), "serve", "--port", str(port), "--no-deploy"],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    for line in serve.stdout:
        lines.append(line)
        if "Ctrl-C (or SIGTERM) stops" in line:
            break
    else:
        pytest.fail("thinkflow serve never said it was ready:\n" + "".join(lines[-40:]))
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=10) as reply:
        assert reply.status == 200
    serve.send_signal(signal.SIGTERM)
    rest, _ = serve.communicate(timeout=60)
    assert serve.returncode == 0 and "stopped the worker and the server" in rest
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=3)
    leftover = subprocess.run(["pgrep", "-f", f"--port {port}"], capture_output=True, text=True).stdout.split()
    assert leftover == []
