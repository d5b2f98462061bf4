import flows  # noqa: I001  (first: sets the Prefect defaults every entry point needs, before Prefect is imported)

import logging
import socket
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = PROJECT_ROOT / "tests" / "fixtures"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


TIERS = {
    "unit": None,
    "integration": "integration",
    "slow": "slow",
    "cluster": "cluster",
}  # folder -> the marker its tests carry


@pytest.hookimpl(tryfirst=True)  # before ``-m`` selects on the markers
def pytest_collection_modifyitems(config, items):
    """A test's tier is its folder: tests/slow/* are ``slow`` and tests/cluster/* are ``cluster``
    (both left out of the default run), tests/integration/* are ``integration``. A test file
    outside these folders is an error."""
    tests = PROJECT_ROOT / "tests"
    for item in items:
        path = Path(item.fspath).resolve()
        if not path.is_relative_to(tests):
            continue
        tier = path.relative_to(tests).parts[0]
        if tier not in TIERS:
            raise pytest.UsageError(
                f"{path}: a test file belongs in tests/unit, tests/integration, tests/slow or tests/cluster"
            )
        if TIERS[tier]:
            item.add_marker(TIERS[tier])


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from tasks.models import build_model

    return build_model("tiny", tmp_path_factory.mktemp("models") / "tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_without_tags(tmp_path_factory) -> Path:
    """The tiny model with the thinking tags left out of its vocabulary (Think-Anywhere* adds them)."""
    from tasks.models import build_tiny_model_once

    return build_tiny_model_once(tmp_path_factory.mktemp("untagged") / "tiny", seed=0, think_tags=False)


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(
        server_startup_timeout=flows.EPHEMERAL_STARTUP_TIMEOUT_S
    ):  # a cold database on a busy machine
        yield
        # Prefect logs "stopping temporary server" after pytest closed its capture streams.
        logging.raiseExceptions = False


@pytest.fixture(scope="session")
def tiny_runs(prefect_harness, tmp_path_factory):
    """The tiny think-anywhere pipeline run twice in one fresh THINKFLOW_HOME: the first run tracked in
    MLflow (a sqlite store in that home), the second not (tracking is in no cache key: all cached).
    Both summaries and the store's artifact ids after each. THINKFLOW_HOME is set only while they run."""
    from flows.think_anywhere import think_anywhere
    from storage import ArtifactStore

    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("THINKFLOW_HOME", str(home))
        first = think_anywhere(config=str(PROJECT_ROOT / "configs" / "tiny.yaml"), overrides=["tracking.kind=mlflow"])
        artifacts_after_first = ArtifactStore().all_ids()
        second = think_anywhere(config=str(PROJECT_ROOT / "configs" / "tiny.yaml"))
        artifacts_after_second = ArtifactStore().all_ids()
    return {
        "home": home,
        "first": first,
        "second": second,
        "artifacts": (artifacts_after_first, artifacts_after_second),
    }


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A private THINKFLOW_HOME for one test."""
    path = tmp_path / "home"
    monkeypatch.setenv("THINKFLOW_HOME", str(path))
    return path


def pytest_terminal_summary(terminalreporter, config):
    """Say why the cluster tier did not run, where the default selection left it out."""
    left_out = [item for item in terminalreporter.stats.get("deselected", []) if item.get_closest_marker("cluster")]
    if left_out and "not cluster" in (config.option.markexpr or ""):
        terminalreporter.write_line(
            f"{len(left_out)} tests in tests/cluster not run (a Docker work pool, Ray and Dask clusters: minutes each): "
            "`make docker` sets up an engine (root, Debian), then `make test-cluster`; .ci/run does both"
        )
