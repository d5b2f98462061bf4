import json

import pytest
from docker_checks import docker_or_skip
from typer.testing import CliRunner

from flows.cli import app
from sandbox.config import SandboxConfig

runner = CliRunner()


def test_problems_load_reports_skips(tmp_path):
    out = tmp_path / "lc.jsonl"
    result = runner.invoke(app, ["problems", "load", "leetcode", "-o", str(out), "--difficulty", "Easy"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(l) for l in out.read_text().splitlines()]
    assert rows and {r["difficulty"] for r in rows} == {"Easy"}
    assert "difficulty_not_selected" in result.output and "linked_structure_types" in result.output


@pytest.mark.parametrize("backend", ["local", "docker"])
def test_verify_writes_one_verdict_per_solution(tmp_path, backend):
    if backend == "docker":
        docker_or_skip(SandboxConfig(backend="docker"))
    problems = tmp_path / "p.jsonl"
    assert runner.invoke(app, ["problems", "load", "humaneval", "-o", str(problems), "--limit", "2"]).exit_code == 0
    first = json.loads(problems.read_text().splitlines()[0])
    solutions = tmp_path / "s.jsonl"
    solutions.write_text(
        "\n".join(
            json.dumps(s)
            for s in [
                {
                    "problem_id": first["id"],
                    "solution_id": "good",
                    "text": f"<think>x</think>\n```python\n{first['reference']}\n```",
                },
                {
                    "problem_id": first["id"],
                    "solution_id": "bad",
                    "text": "```python\ndef has_close_elements(a, b):\n    return None\n```",
                },
                {"problem_id": first["id"], "solution_id": "none", "text": "I do not know."},
            ]
        )
        + "\n"
    )
    verdicts = tmp_path / "v.jsonl"
    result = runner.invoke(
        app, ["verify", str(problems), str(solutions), "-o", str(verdicts), "--workers", "2", "--backend", backend]
    )
    assert result.exit_code == 0, result.output
    statuses = {v["solution_id"]: v["status"] for v in map(json.loads, verdicts.read_text().splitlines())}
    assert statuses == {"good": "passed", "bad": "failed", "none": "error"}


def test_verify_with_the_reward_writes_the_reward_and_its_terms(tmp_path):
    problems = tmp_path / "p.jsonl"
    assert runner.invoke(app, ["problems", "load", "humaneval", "-o", str(problems), "--limit", "1"]).exit_code == 0
    first = json.loads(problems.read_text().splitlines()[0])
    body = first["reference"].replace(
        "distance = abs(elem - elem2)", "distance = abs(<thinkanywhere>order-free</thinkanywhere>elem - elem2)"
    )
    assert body != first["reference"]
    solutions = tmp_path / "s.jsonl"
    solutions.write_text(
        "\n".join(
            json.dumps(s)
            for s in [
                {
                    "problem_id": first["id"],
                    "solution_id": "all",
                    "text": f"<think>compare pairs</think>\n```python\n{body}\n```",
                },
                {"problem_id": first["id"], "solution_id": "plain", "text": f"```python\n{first['reference']}\n```"},
                {
                    "problem_id": first["id"],
                    "solution_id": "format",
                    "text": "<think>guess</think>\n```python\nx = (<thinkanywhere>a</thinkanywhere>1)\n```",
                },
            ]
        )
        + "\n"
    )
    verdicts = tmp_path / "v.jsonl"
    result = runner.invoke(
        app,
        ["verify", str(problems), str(solutions), "-o", str(verdicts), "--workers", "2", "--reward", "think_anywhere"],
    )
    assert result.exit_code == 0, result.output
    rows = {v["solution_id"]: v for v in map(json.loads, verdicts.read_text().splitlines())}
    assert rows["all"]["status"] == "passed" and rows["all"]["reward"] == 1.0
    assert rows["all"]["reward_terms"] == {"correct": 1.0, "upfront_think": 1.0, "inline_think": 1.0}
    assert rows["plain"]["reward"] == 0.9 and rows["format"]["status"] == "failed"
    assert abs(rows["format"]["reward"] - 0.1) < 1e-9
    recipe = tmp_path / "r.yaml"
    recipe.write_text("rl:\n  reward:\n    weights: {correct: 0.5, upfront_think: 0.25, inline_think: 0.25}\n")
    result = runner.invoke(
        app,
        [
            "verify",
            str(problems),
            str(solutions),
            "-o",
            str(verdicts),
            "--workers",
            "2",
            "--reward",
            "think_anywhere",
            "--config",
            str(recipe),
        ],
    )
    assert result.exit_code == 0, result.output
    assert {v["solution_id"]: v["reward"] for v in map(json.loads, verdicts.read_text().splitlines())} == {
        "all": 1.0,
        "plain": 0.5,
        "format": 0.5,
    }
    bad = runner.invoke(app, ["verify", str(problems), str(solutions), "-o", str(verdicts), "--reward", "bleu"])
    assert bad.exit_code == 2 and "think_anywhere only" in bad.output


def test_verify_names_the_bad_row(tmp_path):
    problems = tmp_path / "p.jsonl"
    runner.invoke(app, ["problems", "load", "humaneval", "-o", str(problems), "--limit", "1"])
    solutions = tmp_path / "s.jsonl"
    solutions.write_text(
        json.dumps({"problem_id": "humaneval/0", "solution_id": "a", "text": ""})
        + "\n"
        + json.dumps({"problem_id": "nope", "solution_id": "b", "text": ""})
        + "\n"
    )
    result = runner.invoke(app, ["verify", str(problems), str(solutions), "-o", str(tmp_path / "v.jsonl")])
    assert result.exit_code == 2
    assert "s.jsonl row 2: problem_id 'nope'" in result.output


def test_run_rejects_a_bad_recipe_clearly(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("sft:\n  max_stepz: 1\n")
    result = runner.invoke(app, ["run", "think-anywhere", "--config", str(recipe)])
    assert result.exit_code == 2
    assert "sft.max_stepz" in result.output


def test_verify_with_docker_backend_and_no_engine_says_so(tmp_path):
    from sandbox.config import SandboxUnavailable
    from sandbox.docker_backend import engine_client

    try:
        engine_client(timeout_s=2)
        import pytest

        pytest.skip("a Docker engine answers here")
    except SandboxUnavailable:
        pass
    problems = tmp_path / "p.jsonl"
    assert runner.invoke(app, ["problems", "load", "humaneval", "-o", str(problems), "--limit", "1"]).exit_code == 0
    first = json.loads(problems.read_text().splitlines()[0])
    solutions = tmp_path / "s.jsonl"
    solutions.write_text(json.dumps({"problem_id": first["id"], "solution_id": "a", "text": "no code at all"}) + "\n")
    result = runner.invoke(
        app, ["verify", str(problems), str(solutions), "-o", str(tmp_path / "v.jsonl"), "--backend", "docker"]
    )
    assert result.exit_code != 0 and "no Docker engine answered" in result.output, result.output
    assert not (tmp_path / "v.jsonl").exists()
