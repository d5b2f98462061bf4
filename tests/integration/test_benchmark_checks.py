"""The scorer against HumanEval's own solutions in the sandbox (all pass; broken ones all fail), and
`thinkflow bench generate` and `thinkflow bench decoding` run small."""

import json

import pytest


def test_humaneval_canonical_solutions_all_pass_and_broken_ones_all_fail():
    from sandbox.config import SandboxConfig
    from tasks.evaluation.evaluate import score_samples
    from tasks.problems.catalog import load_source, record_reference_tests
    from tasks.thinking import render_response

    problems = load_source("humaneval").problems
    entry_points = {p["id"]: p["tests"]["entry_point"] for p in problems}
    cfg = SandboxConfig(timeout_s=10, workers=2)
    record_reference_tests(problems, cfg)
    problems = [{**p, "benchmark": "humaneval"} for p in problems]
    canonical = score_samples(problems, [[render_response(p["reference"])] for p in problems], cfg)
    assert len(canonical) == 164
    assert [r["problem_id"] for r in canonical if r["status"] != "passed"] == []
    broken = [
        [
            render_response(
                p["reference"]
                + f"\n\ndef {entry_points[p['id']]}(*args, **kwargs):\n    raise RuntimeError('broken')\n"
            )
        ]
        for p in problems
    ]
    scored = score_samples(problems, broken, cfg)
    assert [r["problem_id"] for r in scored if r["status"] == "passed"] == []
    assert {r["status"] for r in scored} <= {"failed", "error"}


def test_bench_generate_runs_both_modes_on_the_same_prompts():
    from typer.testing import CliRunner

    from flows.cli import app

    result = CliRunner().invoke(
        app,
        [
            "bench",
            "generate",
            "--model",
            "tiny",
            "--prompts",
            "4",
            "--batch-size",
            "4",
            "--max-new-tokens",
            "8",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output[result.output.rindex('{"model"') :].splitlines()[0])
    assert figures["prompts"] == 4 and figures["batched_tokens_per_s"] > 0 and figures["per_sample_tokens_per_s"] > 0
    assert figures["speedup"] == pytest.approx(figures["batched_tokens_per_s"] / figures["per_sample_tokens_per_s"])
    assert figures["identical_replies"] == 4  # greedy, float32: a batch decodes each prompt as it would alone


def test_bench_decoding_runs_each_change_beside_what_it_replaces():
    from typer.testing import CliRunner

    from flows.cli import app

    result = CliRunner().invoke(
        app,
        [
            "bench",
            "decoding",
            "--model",
            "tiny",
            "--prompts",
            "2",
            "--new-tokens",
            "8",
            "--eval-prompts",
            "4",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output[result.output.rindex('{"model"') :].splitlines()[0])
    assert figures["sampled_rows"] == 8 and figures["eval_prompts"] == 4
    speeds = figures["sampling_tokens_per_s"]
    assert figures["sampling_speedup"] == pytest.approx(speeds["inverse CDF"] / speeds["multinomial"])
    seconds = figures["greedy_seconds"]
    assert figures["rounds_speedup"] == pytest.approx(seconds["one round"] / seconds["rounds of 96, per batch"])
    assert figures["pooled_rounds_speedup"] == pytest.approx(
        seconds["rounds of 96, per batch"] / seconds["rounds of 96, pooled"]
    )
    # float32: a continued row decodes what one round decodes, per batch or pooled
    assert figures["identical_greedy_replies"] == {
        "rounds of 96, per batch": 4,
        "rounds of 96, pooled": 4,
        "batch 32, rounds of 96, pooled": 4,
    }
