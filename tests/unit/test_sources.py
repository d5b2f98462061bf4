"""Loaders of the published formats (Skywork-OR1, MBPP, LiveCodeBench) on the fixtures in
tests/fixtures: every good row's record, every malformed row's quarantine entry, and the sandbox
agreeing that correct solutions to the loaded problems pass."""

import base64
import json
import pickle
import zlib
from pathlib import Path

import pytest
from conftest import FIXTURES

from sandbox.config import SandboxConfig
from sandbox.pool import run_batch
from sandbox.verdicts import Job
from tasks.problems.catalog import load_source
from tasks.problems.sources import LEETCODE_PRELUDE, RowError, decode_test_cases


def quarantine_table(result):
    return [(q.row, q.field, q.reason) for q in result.quarantined]


SKYWORK_QUARANTINE = [
    (7, "reward_model.ground_truth", "ground_truth_missing"),
    (8, "reward_model.ground_truth", "ground_truth_unparsable"),
    (9, "reward_model.ground_truth", "io_length_mismatch"),
    (10, "extra_info.model_difficulty.DeepSeek-R1-Distill-Qwen-7B", "bad_difficulty"),
    (11, "id", "duplicate_id"),
    (12, "reward_model.ground_truth.inputs[0]", "bad_test_case"),
    (13, "reward_model.ground_truth.inputs", "no_test_cases"),
]


@pytest.mark.parametrize("filename", ["skywork.parquet", "skywork.jsonl"])
def test_skywork_records_and_quarantine(filename):
    result = load_source(f"skywork:{FIXTURES / filename}")
    assert [p["id"] for p in result.problems] == [f"skywork/{i}" for i in range(6)]
    stdio, call = result.problems[0], result.problems[1]
    assert stdio["source"] == "skywork" and stdio["prompt"].startswith("Read two integers a and b")
    assert stdio["tests"] == {"kind": "stdio", "inputs": ["1 2\n", "3 4\n", "-5 5\n"], "outputs": ["3\n", "7\n", "0\n"]}
    assert stdio["meta"]["model_difficulty"] == {
        "DeepSeek-R1-Distill-Qwen-1.5B": 8,
        "DeepSeek-R1-Distill-Qwen-7B": 5,
        "DeepSeek-R1-Distill-Qwen-32B": 2,
    }
    assert call["tests"] == {
        "kind": "call",
        "fn_name": "addDigits",
        "class_name": "Solution",
        "inputs": [[38], [0], [9999]],
        "outputs": [[2], [0], [9]],
        "compare": "maybe_wrapped",
        "setup": LEETCODE_PRELUDE,
    }
    expected = SKYWORK_QUARANTINE + ([(14, "prompt", "bad_type")] if filename.endswith("jsonl") else [])
    assert quarantine_table(result) == expected
    assert (
        result.quarantined[2].message
        == f"{filename} row 9: reward_model.ground_truth: inputs has 2 items, outputs has 1"
    )
    assert result.quarantined[0].file == str(FIXTURES / filename) and result.quarantined[0].source.startswith(
        "skywork:"
    )
    assert result.rows_in == len(expected) + 6 and result.reconciles()


def test_mbpp_records_and_quarantine():
    result = load_source(f"mbpp:{FIXTURES / 'mbpp.jsonl'}")
    assert [p["id"] for p in result.problems] == ["mbpp/1", "mbpp/2", "mbpp/3", "mbpp/4"]
    add = result.problems[0]
    assert add["reference"] == "def add(a, b):\n    return a + b"
    assert add["tests"] == {
        "kind": "assert",
        "fn_name": "add",
        "setup": "",
        "asserts": ["assert add(1, 2) == 3", "assert add(0, 0) == 0", "assert add(-1, 1) == 0"],
    }
    assert add["prompt"] == (
        "Write a function to add two numbers.\nYour code should pass these tests:\n\n"
        "assert add(1, 2) == 3\nassert add(0, 0) == 0\nassert add(-1, 1) == 0"
    )
    assert result.problems[1]["tests"]["setup"] == "import math"
    assert result.problems[3]["prompt"].startswith("Write a function to reverse a string.")  # sanitized layout
    assert quarantine_table(result) == [
        (5, "test_list", "no_test_cases"),
        (6, "test_list[0]", "bad_test_case"),
        (7, "code", "missing_field"),
        (8, "(row)", "not_json"),
        (9, "(row)", "not_object"),
        (10, "text", "bad_type"),
        (11, "test_list", "bad_test_case"),
    ]
    assert result.quarantined[1].message == "mbpp.jsonl row 6: test_list[0]: not valid Python: invalid syntax"
    assert result.reconciles()


def test_livecodebench_records_and_quarantine(capfd):
    result = load_source(f"livecodebench:{FIXTURES / 'livecodebench.jsonl'}")
    stdin, functional = result.problems
    assert stdin["id"] == "livecodebench/abc001_a"
    assert stdin["tests"] == {"kind": "stdio", "inputs": ["2\n", "5\n", "0\n"], "outputs": ["4\n", "10\n", "0\n"]}
    assert functional["tests"]["kind"] == "call" and functional["tests"]["fn_name"] == "maxSum"
    assert functional["tests"]["inputs"] == [[[1, 5, 3], 2], [[4], 1]] and functional["tests"]["outputs"] == [8, 4]
    assert functional["starter_code"].startswith("class Solution:") and functional["meta"]["platform"] == "leetcode"
    assert quarantine_table(result) == [
        (3, "private_test_cases", "tests_undecodable"),
        (4, "private_test_cases", "tests_undecodable"),
        (5, "metadata.func_name", "missing_field"),
        (6, "private_test_cases", "mixed_test_types"),
        (7, "public_test_cases[0].input", "bad_test_case"),
        (8, "public_test_cases[0].testtype", "bad_test_case"),
    ]
    assert "refusing to load builtins.print" in result.quarantined[1].message
    assert "a pickle global ran" not in capfd.readouterr().out  # the refused pickle never ran its payload


def test_private_tests_decompression_is_bounded(monkeypatch):
    import tasks.problems.sources

    monkeypatch.setattr(tasks.problems.sources, "MAX_PRIVATE_TESTS_BYTES", 1024)
    blob = base64.b64encode(zlib.compress(pickle.dumps(json.dumps([{"input": "x" * 5000}])))).decode()
    with pytest.raises(RowError, match="more than 0 MB decompressed"):
        decode_test_cases({"private_test_cases": blob}, "private_test_cases")


def test_fixture_files_match_their_generator(tmp_path):
    import pyarrow.parquet as pq

    from tests.fixtures.make_fixtures import write_all

    for fresh in write_all(tmp_path):
        committed = FIXTURES / fresh.name
        if fresh.suffix == ".parquet":
            assert pq.read_table(fresh).to_pylist() == pq.read_table(committed).to_pylist()
        else:
            assert fresh.read_text() == committed.read_text(), (
                f"regenerate {committed} (python {Path(__file__).parent}/fixtures/make_fixtures.py)"
            )


def test_correct_solutions_to_loaded_problems_pass_in_the_sandbox():
    """The loaders' test specs mean what the sources meant: wrapped APPS outputs, LiveCodeBench's
    functional argument lines, MBPP asserts with setup code."""
    problems = {
        p["id"]: p
        for name in ("skywork:skywork.parquet", "livecodebench:livecodebench.jsonl", "mbpp:mbpp.jsonl")
        for p in load_source(name.replace(":", f":{FIXTURES}/")).problems
    }
    solutions = {
        "skywork/0": "a, b = map(int, input().split())\nprint(a + b)",
        "skywork/1": "class Solution:\n    def addDigits(self, num):\n        return 0 if num == 0 else 1 + (num - 1) % 9",
        "livecodebench/abc001_a": "print(int(input()) * 2)",
        "livecodebench/3001": "class Solution:\n    def maxSum(self, nums, k):\n        return sum(sorted(nums)[-k:])",
        "mbpp/2": "def hypot(a, b):\n    return math.sqrt(a * a + b * b)",
    }
    wrong = {
        "skywork/1": solutions["skywork/1"].replace("1 + (num - 1) % 9", "num % 9"),
        "livecodebench/3001": solutions["livecodebench/3001"].replace("[-k:]", "[:k]"),
    }
    jobs = [Job(i, "right", code, problems[i]["tests"]) for i, code in solutions.items()]
    jobs += [Job(i, "wrong", code, problems[i]["tests"]) for i, code in wrong.items()]
    verdicts = run_batch(jobs, SandboxConfig())
    assert [(v.problem_id, v.status) for v in verdicts] == [(i, "passed") for i in solutions] + [
        (i, "failed") for i in wrong
    ]
