"""What the GRPO worker relies on in TRL beyond its public API, checked against the installed TRL so a
release that changes it fails here, loudly, instead of silently training without the group filter.

TRL has no public hook to drop a group whose rewards all tie (a reward function returning None
leaves a sample out of that function's sum, not out of the loss), so tasks/training/grpo_worker.py
overrides ``GRPOTrainer._generate_and_score_completions`` and masks such groups in its output.
pyproject.toml pins TRL to the minor release this was written against."""

import inspect


def test_the_private_method_the_group_filter_overrides_is_still_there_with_its_shape():
    from trl import GRPOTrainer

    method = GRPOTrainer._generate_and_score_completions
    assert list(inspect.signature(method).parameters) == ["self", "inputs"]
    source = inspect.getsource(method)
    for key in ('"advantages"', '"completion_mask"'):  # the two entries of its output the override reads and rewrites
        assert key in source, f"TRL's _generate_and_score_completions no longer returns {key}"
    assert "self._metrics" in inspect.getsource(GRPOTrainer)  # where the override logs groups_dropped


def test_the_installed_trl_is_the_pinned_minor_release():
    import tomllib
    from importlib.metadata import version

    from conftest import PROJECT_ROOT

    pins = [
        d
        for d in tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
        if d.startswith("trl")
    ]
    assert pins == ["trl>=1.16,<1.17"] and version("trl").startswith("1.16.")
