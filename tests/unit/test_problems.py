"""Loaders on the real shipped data: counts and skip reasons."""

import json

import pytest

from tasks.problems.bundled import eval_test_case, load_humaneval, load_leetcode
from tasks.problems.catalog import load_source, split_of
from tasks.problems.sources import load_jsonl
from tasks.records import ProblemFormatError


@pytest.fixture(scope="module")
def leetcode():
    return load_leetcode()


def test_leetcode_counts_and_skip_reasons(leetcode):
    assert len(leetcode.problems) == 1124  # in-place methods and the problems' own checkers included
    assert dict(leetcode.skipped) == {
        "linked_structure_types": 169,
        "design_class": 69,
        "custom_helpers": 12,
        "multiple_methods": 12,
        "custom_run_body": 8,
        "multiple_test_methods": 7,
        "custom_test_body": 2,
        "unparsable_test_case": 2,
    }
    assert not leetcode.quarantined
    assert len(leetcode.problems) + sum(leetcode.skipped.values()) == 1405  # nothing dropped unaccounted


def test_leetcode_record_shape(leetcode):
    by_id = {p["id"]: p for p in leetcode.problems}
    two_sum = by_id["leetcode/1"]
    assert two_sum["source"] == "leetcode" and two_sum["difficulty"] == "Easy"
    assert two_sum["starter_code"].startswith("class Solution:\n    def two_sum(self")
    tests = two_sum["tests"]
    assert tests["kind"] == "call" and tests["fn_name"] == "two_sum" and tests["class_name"] == "Solution"
    assert len(tests["inputs"]) == len(tests["outputs"]) > 0
    assert tests["inputs"][0] == [[2, 7, 11, 15], 9] and tests["outputs"][0] == [0, 1]


def test_leetcode_difficulty_filter_is_counted():
    easy = load_leetcode(difficulties=["Easy"])
    assert {p["difficulty"] for p in easy.problems} == {"Easy"}
    assert easy.skipped["difficulty_not_selected"] > 1000


def test_test_case_expressions():
    assert eval_test_case("(Solution, [1, 2], 3)") == ([1, 2], 3)
    assert eval_test_case("('ab' * 2, 2**3, -1)") == ("abab", 8, -1)
    with pytest.raises(ValueError):
        eval_test_case("(__import__('os').system('true'), 1)")
    with pytest.raises(ValueError):
        eval_test_case("(2 ** 10000, 1)")


def test_humaneval_records():
    result = load_humaneval()
    assert len(result.problems) == 164 and not result.skipped
    first = result.problems[0]
    assert first["id"] == "humaneval/0" and first["tests"]["kind"] == "check"
    assert first["tests"]["entry_point"] == "has_close_elements"
    assert first["reference"].startswith(first["prompt"])


def test_limit_is_counted_not_silent():
    result = load_source("humaneval", limit=10)
    assert len(result.problems) == 10 and result.skipped["over_limit"] == 154


def test_split_is_deterministic_and_disjoint():
    ids = [p["id"] for p in load_humaneval().problems]
    first = [split_of(i, 0.2, 0) for i in ids]
    assert first == [split_of(i, 0.2, 0) for i in reversed(ids)][::-1]
    assert 15 < first.count("eval") < 50
    assert first != [split_of(i, 0.2, 1) for i in ids]


def test_jsonl_bad_rows_are_quarantined_naming_file_row_and_field(tmp_path):
    good = {
        "id": "x/1",
        "source": "x",
        "prompt": "p",
        "tests": {"kind": "call", "fn_name": "f", "inputs": [[1]], "outputs": [1]},
    }
    path = tmp_path / "p.jsonl"
    rows = [
        good,
        None,
        {**good, "id": "x/2", "tests": {**good["tests"], "outputs": [1, 2]}},
        {"id": "x/3", "prompt": "p"},
        "{not json",
        {**good, "prompt": ""},
        good,
    ]
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) if r else "" for r in rows) + "\n")
    result = load_jsonl(path)
    assert [p["id"] for p in result.problems] == ["x/1"]  # the run went on past every bad row
    assert [(q.row, q.field, q.reason) for q in result.quarantined] == [
        (3, "tests", "bad_tests"),
        (4, "source", "missing_field"),
        (5, "(row)", "not_json"),
        (6, "prompt", "bad_type"),
        (7, "id", "duplicate_id"),
    ]
    assert result.quarantined[0].message == "p.jsonl row 3: tests: x/2: tests.inputs has 1 items, tests.outputs has 2"
    assert result.quarantined[1].message == "p.jsonl row 4: source: missing field(s) source, tests"
    assert result.rows_in == 6 and result.reconciles()  # the blank line is not a row
    assert result.problems[0]["reference"] is None


def test_unknown_source_is_a_clear_error():
    with pytest.raises(
        ProblemFormatError,
        match=r"unknown problem source 'apps:x'; known: leetcode, humaneval, functions\[:split=train.*skywork:PATH",
    ):
        load_source("apps:x")
    with pytest.raises(FileNotFoundError, match="nowhere.parquet does not exist"):
        load_source("skywork:/nowhere.parquet")
