"""The demo itself (SmolLM2-135M-Instruct, 45 min on 2 cores on 2026-12-01): `make test-slow`."""

import json
import os
import subprocess
import sys

from conftest import PROJECT_ROOT


def test_demo_runs_end_to_end_with_lineage(tmp_path):
    env = {**os.environ, "THINKFLOW_HOME": str(tmp_path / "home"), "PREFECT_HOME": str(tmp_path / "prefect")}
    thinkflow = [sys.executable, "-m", "flows.cli"]
    done = subprocess.run(thinkflow + ["demo", "--json"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=40 * 60)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    stages = {s["stage"]: s for s in summary["stages"]}
    report_id = stages["evaluate rl"]["artifact_ids"][0]
    metrics = stages["evaluate rl"]["metrics"][report_id]
    assert metrics["problems/humaneval"] > 0 and metrics["problems/leetcode"] > 0
    assert 0 <= metrics["pass@1"] <= 1
    comparison = summary["comparison"]
    assert [row[0] for row in comparison["rows"]] == ["base", "sft", "rl"]
    assert all((PROJECT_ROOT / comparison["folder"] / name).exists() for name in ("pass_at_1.png", "think_tokens.png"))
    sft_id = stages["sft"]["artifact_ids"][0]
    assert stages["sft"]["metrics"][sft_id]["loss_last"] < stages["sft"]["metrics"][sft_id]["loss_first"] * 1.5
    upstream = subprocess.run(thinkflow + ["lineage", "upstream", report_id, "--json"], cwd=PROJECT_ROOT, env=env,
                              capture_output=True, text=True, check=True)
    stages_seen = {link["stage"] for link in json.loads(upstream.stdout)}
    assert {"evaluate", "grpo", "sft", "coldstart", "split_problems"} <= stages_seen
