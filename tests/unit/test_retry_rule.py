"""Which failures a stage retries: the machinery's, never a bug's or bad data's."""

import pytest

from sandbox.config import SandboxUnavailable
from storage.lineage import LineageBusy
from tasks.stage_run import is_transient
from tasks.training.launch import TrainingFailed


@pytest.mark.parametrize(
    "failure",
    [
        LineageBusy("held"),
        SandboxUnavailable("no unshare"),
        ConnectionError("refused"),
        TimeoutError("slow"),
        OSError("disk"),
        TrainingFailed("killed: -9", transient=True),
    ],
)
def test_the_machinery_failing_is_retried(failure):
    assert is_transient(failure)


@pytest.mark.parametrize(
    "failure",
    [
        AttributeError("typo"),
        NameError("x"),
        KeyError("column"),
        ValueError("bad row"),
        TypeError("arg"),
        FileNotFoundError("recipe.yaml"),
        ZeroDivisionError(),
        TrainingFailed("worker exited with 1:\nTraceback ..."),
    ],
)
def test_a_bug_or_bad_input_is_not(failure):
    assert not is_transient(failure)
