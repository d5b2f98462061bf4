"""The tracker's naming rules, and a tracked stage run against a real MLflow store (sqlite, offline)."""

import pytest
from conftest import PROJECT_ROOT

from tasks.recipe import TrackingConfig, load_recipe
from tasks.tracking import flat_params, metric_name, open_tracked_run, tracking_stage


def test_metric_names_are_ones_mlflow_accepts():
    assert metric_name(None, "pass@1/humaneval", 1) == "pass_at_1/humaneval"
    assert metric_name("report", "pass@1", 2) == "report/pass_at_1"
    assert metric_name("checkpoint", "loss(first)", 1) == "loss_first_"


def test_params_are_flattened_and_cut_to_mlflows_limit():
    flat = flat_params({"rl": {"reward": {"weights": {"correct": 0.9}}, "system": "x" * 7000}}, "thinkflow")
    assert flat["thinkflow.rl.reward.weights.correct"] == "0.9"
    assert len(flat["thinkflow.rl.system"]) == 6000


def test_tracking_is_in_no_cache_key_and_off_by_default():
    assert TrackingConfig(kind="mlflow", uri="sqlite:///x.db", experiment="e").cache_key() == {}
    assert load_recipe(PROJECT_ROOT / "configs" / "tiny.yaml", ["tracking.kind=mlflow"]).tracking.kind == "mlflow"
    with tracking_stage(TrackingConfig(), None, "think-anywhere", "sft"):
        assert open_tracked_run(None) is None


def test_a_tracked_run_carries_lineage_ids_metrics_and_its_end_state(tmp_path):
    mlflow = pytest.importorskip("mlflow")
    with tracking_stage(TrackingConfig(kind="mlflow"), tmp_path, "think-anywhere", "evaluate rl"):
        tracked = open_tracked_run("flow-1")
    tracked.finish(
        lineage_run_id="run-1",
        inputs={"model": "checkpoint-a"},
        params={"variant": {"name": "thinking"}},
        outputs={"report": {"artifact_id": "report-b"}},
        completed=True,
        logged_by_trainer={"loss"},
        metrics=[("report-b", "pass@1", 0.25, None), ("report-b", "loss", 1.0, 1), ("report-b", "reward", 0.5, 1)],
    )
    run = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_run(tracked.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "think-anywhere / evaluate rl"
    assert (
        run.data.tags["thinkflow.lineage_run_id"] == "run-1" and run.data.tags["thinkflow.output.report"] == "report-b"
    )
    assert (
        run.data.tags["thinkflow.input.model"] == "checkpoint-a"
        and run.data.tags["thinkflow.prefect_flow_run_id"] == "flow-1"
    )
    assert run.data.metrics == {"pass_at_1": 0.25, "reward": 0.5}  # loss: the trainer logged it already
    assert run.data.params == {"thinkflow.variant.name": "thinking"}
