"""Reading a pipeline summary, and re-running the tiny pipeline from an edited copy of the project on the
``tiny_runs`` store (tests/conftest.py): what the code-version tests in integration/test_pipeline.py and
slow/test_changed_helper.py share."""

import json

from conftest import PROJECT_ROOT
from tiny_cli import run_tiny


def stage_ids(summary, stage):
    return next(s["artifact_ids"] for s in summary["stages"] if s["label"] == stage)


def shard_stage(summary, prefix):
    return next(s for s in summary["stages"] if s["label"].startswith(prefix + " ("))


def copy_of_the_project(target):
    """The project's code and recipes, as a checkout would have them (no venv, no store)."""
    import shutil

    for folder in ("flows", "tasks", "sandbox", "storage", "configs"):
        shutil.copytree(PROJECT_ROOT / folder, target / folder, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def rerun_from(copy, tiny_runs) -> dict:
    """The tiny pipeline run from a copy of the project on the same store and Prefect results; its summary."""
    import os
    import sys

    from prefect.settings import get_current_settings

    settings = get_current_settings()
    env = {
        **os.environ,
        "PYTHONPATH": str(copy),
        "THINKFLOW_HOME": str(tiny_runs["home"]),
        "PREFECT_API_URL": str(settings.api.url),
        "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(settings.results.local_storage_path),
    }
    return json.loads(run_tiny(copy, env, timeout_s=600, program=[sys.executable, "-m", "flows.cli"]).stdout)
