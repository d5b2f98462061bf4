"""The retraining decision: a tie keeps the incumbent, a missing metric is named."""

import pytest


def test_a_tie_keeps_the_incumbent_and_a_missing_metric_is_named(tmp_path):
    from storage import LineageStore
    from tasks.evaluation.retrain_decision import decide, metric_value

    incumbent = {"checkpoint": "checkpoint-a", "report": "report-a", "value": 0.5}
    assert (
        decide("pass@1", {"checkpoint": "checkpoint-b", "report": "report-b", "value": 0.5}, incumbent)["best"]
        == incumbent
    )
    assert decide("pass@1", {"checkpoint": "checkpoint-b", "report": "report-b", "value": 0.6}, incumbent)["improved"]
    assert decide("pass@1", incumbent, None)["best"] == incumbent
    with pytest.raises(ValueError, match="report-x has no metric 'pass@1'"):
        metric_value(LineageStore(tmp_path / "l.duckdb"), "report-x", "pass@1")
