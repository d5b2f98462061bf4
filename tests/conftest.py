import logging
import os

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from tasks.models import build_model

    return build_model("tiny", tmp_path_factory.mktemp("models") / "tiny", seed=0)


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield
        # Prefect logs "stopping temporary server" after pytest closed its capture streams.
        logging.raiseExceptions = False


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A private THINKFLOW_HOME for one test."""
    path = tmp_path / "home"
    monkeypatch.setenv("THINKFLOW_HOME", str(path))
    return path
