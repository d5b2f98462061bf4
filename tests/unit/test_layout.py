"""The layout's rules, read from the source: the import graph of flows/ tasks/ sandbox/ storage/
has no circle (imports inside functions count), sandbox/ and storage/ import nothing else of the
project, tasks/ imports no flow and no CLI, no pipeline imports another, and no module is over
600 lines. Also: a stage's code version follows what it reaches, and loading a recipe starts
neither Prefect nor the sandbox."""

import subprocess
import sys

import networkx as nx
import pytest
from conftest import PROJECT_ROOT

from tasks.code_version import PROJECT_PACKAGES, direct_dependencies, module_name, reachable_files

PIPELINES = ("flows.think_anywhere", "flows.thinking_midtraining", "flows.evaluate", "flows.retrain")


def project_modules() -> list:
    return sorted(p for package in PROJECT_PACKAGES for p in (PROJECT_ROOT / package).rglob("*.py"))


@pytest.fixture(scope="module")
def imports() -> nx.DiGraph:
    """Module -> the project modules it imports. A module's own packages (whose ``__init__`` runs
    before it) count for its code version, but are not edges here: ``flows.cli`` importing
    ``flows.cli.run`` is a package holding its module, not a circle."""
    graph = nx.DiGraph()
    for path in project_modules():
        name = module_name(path)
        graph.add_node(name)
        for dependency in map(module_name, direct_dependencies(path)):
            if not name.startswith(dependency + "."):
                graph.add_edge(name, dependency)
    return graph


def test_the_graph_is_read_from_the_source(imports):
    """Known edges, a lazy one among them: a reader that missed them would pass every rule below."""
    assert imports.has_edge("flows.think_anywhere", "flows.stage_sequences")
    assert imports.has_edge("tasks.coldstart.build", "tasks.coldstart.insertion_sites")
    assert imports.has_edge("tasks.problems.filters", "tasks.problems.solutions")  # inside pass_rate_band
    assert imports.has_edge("sandbox.worker", "sandbox.confine")  # a script importing its neighbour
    assert PROJECT_ROOT / "tasks" / "problems" / "__init__.py" in direct_dependencies(
        PROJECT_ROOT / "tasks" / "problems" / "load.py"
    )


def test_no_circles(imports):
    assert list(nx.simple_cycles(imports)) == []


def test_sandbox_and_storage_are_leaves(imports):
    for leaf in ("sandbox", "storage"):
        outside = {(a, b) for a, b in imports.edges if a.split(".")[0] == leaf and b.split(".")[0] != leaf}
        assert outside == set(), f"{leaf}/ imports other project code: {sorted(outside)}"


def test_tasks_import_no_flow_and_no_cli(imports):
    reaching = {(a, b) for a, b in imports.edges if a.split(".")[0] == "tasks" and b.split(".")[0] == "flows"}
    assert reaching == set()


def test_no_pipeline_imports_another(imports):
    for pipeline in PIPELINES:
        reached = nx.descendants(imports, pipeline)
        assert reached.isdisjoint(set(PIPELINES) - {pipeline}), pipeline
        assert not any(m.startswith("flows.cli") for m in reached), pipeline


def test_no_module_is_over_600_lines():
    long = {
        str(p.relative_to(PROJECT_ROOT)): n for p in project_modules() if (n := len(p.read_text().splitlines())) > 600
    }
    assert long == {}


def test_a_stage_reaches_its_helpers_and_declared_files_and_nothing_it_does_not_import():
    coldstart = {str(p.relative_to(PROJECT_ROOT)) for p in reachable_files("tasks.coldstart.build")}
    assert {
        "tasks/coldstart/insertion_sites.py",
        "tasks/records.py",
        "tasks/models.py",
        "configs/prompts/rewrite.md",
        "sandbox/worker.py",
        "sandbox/confine.py",
    } <= coldstart
    assert not any(p.startswith(("flows/", "tasks/training/", "tasks/evaluation/")) for p in coldstart)
    rl = {str(p.relative_to(PROJECT_ROOT)) for p in reachable_files("tasks.training.rl")}
    assert {
        "tasks/training/worker.py",
        "tasks/training/grpo_worker.py",
        "tasks/training/checkpoints.py",
        "tasks/training/rewards.py",
        "tasks/training/reward_terms.py",
        "sandbox/pool.py",
        "sandbox/local.py",
    } <= rl
    before_rl = ("tasks.training.sft", "tasks.problems.calibration", "tasks.coldstart.build", "tasks.problems.load")
    assert not any(
        PROJECT_ROOT / "tasks/training/reward_terms.py" in reachable_files(m) for m in before_rl
    )  # the recipe validates weights against the registry without reaching it: a term edit re-runs RL on
    sft = {str(p.relative_to(PROJECT_ROOT)) for p in reachable_files("tasks.training.sft")}
    assert {"tasks/training/worker.py", "tasks/training/sft_worker.py", "tasks/training/checkpoints.py"} <= sft
    assert not sft & {
        "tasks/training/rewards.py",
        "tasks/training/grpo_worker.py",
        "sandbox/pool.py",
    }  # an RL edit re-runs no SFT
    # the Docker backend counts only where a recipe picks it (in the sandbox section's cache key), never in a code version
    assert not any(
        PROJECT_ROOT / "sandbox/docker_backend.py" in reachable_files(m)
        for m in ("tasks.training.rl", "tasks.problems.load")
    )
    base_model = {str(p.relative_to(PROJECT_ROOT)) for p in reachable_files("tasks.models")}
    assert not base_model & {"sandbox/pool.py", "sandbox/local.py", "sandbox/worker.py"}
    loading = {str(p.relative_to(PROJECT_ROOT)) for p in reachable_files("tasks.problems.load")}
    assert "tasks/coldstart/insertion_sites.py" not in loading and "tasks/problems/sources.py" in loading
    midtraining_eval = {str(p.relative_to(PROJECT_ROOT)) for p in reachable_files("tasks.midtraining.evaluation")}
    assert "tasks/midtraining/next_segment.py" in midtraining_eval
    assert not midtraining_eval & {
        "tasks/training/rewards.py",
        "tasks/training/reward_terms.py",
        "tasks/training/rl.py",
    }  # a code-reward edit re-runs no mid-training evaluation: the judge has its own module


def test_loading_a_recipe_starts_neither_prefect_nor_the_sandbox():
    probe = (
        "import sys; from tasks.recipe import load_recipe; load_recipe('configs/default.yaml'); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('prefect', 'sandbox', 'torch')))"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_stage_run_outside_the_project_names_the_module_whose_code_it_runs(tmp_path, monkeypatch):
    """A benchmark (not a project module) that runs a stage's worker records that stage's code version."""
    from tasks.code_version import code_version
    from tasks.stage_run import StageRun

    monkeypatch.setenv("THINKFLOW_HOME", str(tmp_path))
    with pytest.raises(ValueError, match="not a module of this project"):
        StageRun("bench", inputs={}, params={})
    run = StageRun("bench", inputs={}, params={}, code_module="tasks.training.rl")
    assert run.code_version == code_version("tasks.training.rl")
