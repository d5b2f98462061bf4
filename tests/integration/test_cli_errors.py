"""Bad input through the real console script: one line on stderr that names the file, key or row,
exit status 2, no traceback; ``--debug`` brings the traceback back."""

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import PROJECT_ROOT

THINKFLOW = str(Path(sys.executable).with_name("thinkflow"))


def thinkflow(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [THINKFLOW, *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A folder of broken inputs next to good ones, and a lineage store held open by another process."""
    folder = tmp_path_factory.mktemp("bad-input")
    (folder / "broken.yaml").write_text("sft:\n  max_steps: [1,\n")
    (folder / "typo.yaml").write_text("sft:\n  max_stepz: 1\n")
    (folder / "list.yaml").write_text("- sft\n- rl\n")
    problem = {
        "id": "hand/1",
        "source": "hand",
        "prompt": "Return 1.",
        "starter_code": "",
        "reference": "def f():\n    return 1\n",
        "difficulty": None,
        "meta": {},
        "tests": {"kind": "call", "fn_name": "f", "inputs": [[]], "outputs": [1]},
    }
    (folder / "problems.jsonl").write_text(json.dumps(problem) + "\n")
    (folder / "problems-bad.jsonl").write_text(json.dumps(problem) + "\n{not json\n")
    (folder / "solutions-bad.jsonl").write_text(
        json.dumps({"problem_id": "hand/1", "solution_id": "a", "text": "x"})
        + "\n"
        + json.dumps({"problem_id": "hand/1", "text": "no id"})
        + "\n"
    )
    home = folder / "home"
    store = subprocess.run(
        [
            sys.executable,
            "-c",
            "from storage import ArtifactStore, LineageStore\ns = ArtifactStore(); LineageStore(s.lineage_path)",
        ],
        cwd=PROJECT_ROOT,
        env={**os.environ, "THINKFLOW_HOME": str(home)},
        check=True,
    )
    assert store.returncode == 0
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time\ncon = duckdb.connect(sys.argv[1])\nprint('held', flush=True)\ntime.sleep(120)",
            str(home / "lineage.duckdb"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    yield folder, home
    holder.kill()
    holder.wait()


CASES = [
    # (what, arguments, text the one line must contain)
    (
        "unknown pipeline",
        ["run", "think-everywhere", "--config", "configs/tiny.yaml"],
        "unknown pipeline 'think-everywhere'",
    ),
    ("missing recipe", ["run", "think-anywhere", "--config", "configs/nope.yaml"], "configs/nope.yaml does not exist"),
    ("broken YAML", ["run", "think-anywhere", "--config", "{d}/broken.yaml"], "broken.yaml line 3"),
    (
        "recipe not a mapping",
        ["run", "think-anywhere", "--config", "{d}/list.yaml"],
        "list.yaml: the recipe must be a mapping",
    ),
    (
        "bad recipe key",
        ["run", "think-anywhere", "--config", "{d}/typo.yaml"],
        "sft.max_stepz: Extra inputs are not permitted",
    ),
    (
        "bad --set value",
        ["run", "thinking-midtraining", "--config", "configs/tiny.yaml", "--set", "rl.max_steps=many"],
        "rl.max_steps: Input should be a valid integer",
    ),
    (
        "--set without =",
        ["run", "think-anywhere", "--config", "configs/tiny.yaml", "--set", "rl.max_steps"],
        "--set expects KEY=VALUE",
    ),
    (
        "unknown checkpoint",
        ["run", "evaluate", "--config", "configs/tiny.yaml", "--set", "checkpoints=[checkpoint-nope]"],
        "checkpoint checkpoint-nope is not in the artifact store",
    ),
    (
        "unknown problem source",
        ["problems", "load", "codeforces", "-o", "{d}/out.jsonl"],
        "unknown problem source 'codeforces'",
    ),
    (
        "missing problems file",
        ["problems", "load", "mbpp:{d}/mbpp-missing.jsonl", "-o", "{d}/out.jsonl"],
        "mbpp-missing.jsonl",
    ),
    (
        "malformed problems file",
        ["verify", "{d}/problems-bad.jsonl", "{d}/problems.jsonl", "-o", "{d}/v.jsonl"],
        "problems-bad.jsonl row 2",
    ),
    (
        "malformed solutions file",
        ["verify", "{d}/problems.jsonl", "{d}/solutions-bad.jsonl", "-o", "{d}/v.jsonl"],
        "solutions-bad.jsonl row 2: missing field(s) solution_id",
    ),
    ("unknown artifact", ["lineage", "show", "dataset-nope"], "dataset-nope"),
    ("busy lineage store", ["lineage", "runs"], "stayed locked by another process"),
]


def test_bad_input_gets_one_line_naming_what_is_wrong_and_exit_2(inputs):
    folder, home = inputs
    env_for = {
        "unknown artifact": {"THINKFLOW_HOME": str(folder / "empty-home")},
        "busy lineage store": {"THINKFLOW_HOME": str(home), "THINKFLOW_LINEAGE_WAIT_S": "1"},
    }

    def attempt(case):
        name, args, _ = case
        env = {"THINKFLOW_HOME": str(folder / "empty-home"), **env_for.get(name, {})}
        return thinkflow(*[a.format(d=folder) for a in args], env=env)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(attempt, CASES))
    for (name, _, expected), done in zip(CASES, results):
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2, (name, done.returncode, done.stderr[-2000:])
        assert 1 <= len(lines) <= 3 and "Traceback" not in done.stderr, (name, done.stderr[-2000:])
        assert expected.format(d=folder) in " ".join(lines), (name, lines)
    assert not (folder / "v.jsonl").exists()  # nothing half-written


def test_debug_shows_the_traceback_behind_the_line(inputs):
    folder, _ = inputs
    done = thinkflow(
        "--debug", "problems", "load", "mbpp:" + str(folder / "mbpp-missing.jsonl"), "-o", str(folder / "o.jsonl")
    )
    assert done.returncode != 0 and "Traceback" in done.stderr and "mbpp-missing.jsonl" in done.stderr


def test_verify_starts_without_prefect():
    """The sandbox path needs no orchestrator: importing Prefect costs ~1.7 s of a 2.8 s start."""
    probe = (
        "import sys, runpy\nsys.argv = ['thinkflow', 'verify', '--help']\n"
        "try:\n    runpy.run_module('flows.cli', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "from tasks.problems.catalog import record_reference_tests\nfrom tasks.problems.sources import load_jsonl\n"
        "from tasks.thinking import extract_code\nimport sandbox, tasks.progress\n"
        "print('prefect loaded' if 'prefect' in sys.modules else 'no prefect')"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip().splitlines()[-1] == "no prefect", done.stdout + done.stderr


def test_a_home_that_is_not_a_folder_is_named_before_prefect_waits_for_its_server(tmp_path):
    env = {"HOME": str(tmp_path / "missing" / "home"), "THINKFLOW_HOME": str(tmp_path / "tf")}
    environment = {k: v for k, v in os.environ.items() if k not in ("PREFECT_HOME", "PREFECT_API_URL")}
    done = subprocess.run(
        [THINKFLOW, "run", "think-anywhere", "--config", "configs/tiny.yaml"],
        cwd=PROJECT_ROOT,
        env={**environment, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert (
        f"its folder {tmp_path / 'missing' / 'home'} does not exist" in done.stderr and "Traceback" not in done.stderr
    )
