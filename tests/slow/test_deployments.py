"""Deployments for real: a local Prefect server and process worker (``thinkflow serve``'s
LocalPrefect), `prefect deployment run` of the tiny pipeline, lineage written by that flow run,
the `gpu` limit held by training, and the retrain cron schedule as scheduled runs. How
`thinkflow serve` stops on SIGTERM is slow/test_serve_shutdown.py."""

import json
import time
import urllib.request
from datetime import datetime

from deployment_runs import tiny_deployment_run


def api(local, path: str, body: dict | None = None):
    request = urllib.request.Request(
        f"{local.env['PREFECT_API_URL']}{path}",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json"},
        method="POST" if body is not None else "GET",
    )
    with urllib.request.urlopen(request, timeout=30) as reply:
        return json.loads(reply.read())


def test_a_deployment_runs_the_tiny_pipeline_on_a_local_server_and_worker(tmp_path, monkeypatch):
    from storage import LineageStore

    with tiny_deployment_run(tmp_path, monkeypatch, "think-anywhere/default") as (local, _, flow_run_id):
        flow_run = api(local, f"/flow_runs/{flow_run_id}")
        assert flow_run["state"]["type"] == "COMPLETED"

        held: list[str] = []
        for _ in range(30):  # events reach the database a few seconds after they happen
            events = api(
                local, "/events/filter", {"filter": {"event": {"prefix": ["prefect.concurrency-limit."]}}, "limit": 50}
            )["events"]
            held = [e["event"] for e in events if "tag:gpu" in json.dumps(e)]
            if held.count("prefect.concurrency-limit.acquired") >= 2:
                break
            time.sleep(1)
        assert held.count("prefect.concurrency-limit.acquired") >= 2, held  # sft and grpo each took the one gpu slot

        deployments = api(local, "/deployments/filter", {})
        assert sorted(d["name"] for d in deployments) == ["default", "default", "default", "weekly"]
        retrain = next(d for d in deployments if d["name"] == "weekly")
        scheduled = api(
            local,
            "/flow_runs/filter",
            {"flow_runs": {"deployment_id": {"any_": [retrain["id"]]}, "state": {"type": {"any_": ["SCHEDULED"]}}}},
        )
        starts = sorted(datetime.fromisoformat(r["expected_start_time"].replace("Z", "+00:00")) for r in scheduled)
        assert len(starts) >= 3 and all(s.weekday() == 0 and (s.hour, s.minute) == (3, 0) for s in starts)

    lineage = LineageStore(tmp_path / "home" / "lineage.duckdb")
    written = lineage.recent_runs(limit=100, flow_run_id=flow_run_id)
    stages = {r["stage"] for r in written}
    assert {"load_problems", "sft", "grpo", "evaluate", "compare_evaluations"} <= stages
    assert all(r["status"] == "completed" for r in written)
    assert (tmp_path / "worker.log").read_text().count("Worker") >= 1 and "stopped" in (
        tmp_path / "worker.log"
    ).read_text()
