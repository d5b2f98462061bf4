"""The demo itself (SmolLM2-135M-Instruct on 2 cores, ~45 min with AMX-BF16): `make test-slow`.

It asserts the reproduction's acceptance points, read from the demo's own artifacts and lineage:
RL beats the base on the held-out task family (paired interval above 0) and is not below SFT; after
RL most replies open with a thought and carry one inside a statement (the reward's own rules); the
probe-set reward rises by more than its interval; the entropy at think sites is measured on 30+
sites; HumanEval is paired and reported."""

import json
import os
import subprocess
import sys

from conftest import PROJECT_ROOT


def test_demo_reproduces_the_think_anywhere_effect(tmp_path):
    import pyarrow.parquet as pq

    from storage import ArtifactStore, LineageStore
    from tasks.thinking import format_credit

    env = {**os.environ, "THINKFLOW_HOME": str(tmp_path / "home"), "PREFECT_HOME": str(tmp_path / "prefect")}
    thinkflow = [sys.executable, "-m", "flows.cli"]
    done = subprocess.run(
        thinkflow + ["demo", "--json"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=80 * 60
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    stages = {s["label"]: s for s in summary["stages"]}
    assert [row[0] for row in summary["comparison"]["rows"]] == ["base", "sft", "rl"]
    store, lineage = ArtifactStore(tmp_path / "home"), LineageStore(tmp_path / "home" / "lineage.duckdb")

    compare = lineage.metrics_of(stages["compare"]["artifact_ids"][0])
    assert compare["paired/rl/functions/problems"] >= 200
    assert compare["paired/rl/functions/low"] > 0, compare  # RL above the base, the paired 95 % interval above 0
    assert compare["paired/rl-vs-sft/functions/delta"] >= 0  # RL not below SFT
    assert compare["paired/rl/humaneval/problems"] >= 30  # the transfer benchmark, paired (no sign required)

    report = stages["evaluate rl"]["artifact_ids"][0]
    rows = [
        r for r in pq.read_table(store.path(report) / "samples.parquet").to_pylist() if r["benchmark"] == "functions"
    ]
    credits = [format_credit(r["response"]) for r in rows]
    assert sum(c.upfront_think for c in credits) >= 0.8 * len(rows)
    assert sum(c.inline_think for c in credits) >= 0.5 * len(rows)
    rl_metrics = lineage.metrics_of(report)
    assert rl_metrics["think_sites"] >= 30 and rl_metrics["entropy_ratio"] > 0

    rl = stages["rl"]["artifact_ids"][0]
    training = lineage.metrics_of(rl)
    assert training["probe_reward_gain_ci_low"] > 0, training  # the probe set's last quarter above its first
    curves = lineage.latest_artifact("grpo-curves", "report")
    assert curves and (store.path(curves["artifact_id"]) / "probe.png").exists()
    calibrated = stages["calibrate"]["artifact_ids"][0]
    assert (
        lineage.metrics_of(calibrated)["kept"] >= 8
    )  # a generation batch draws 8 different problems (23 on 2026-12-06)
