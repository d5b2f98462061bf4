"""LeetCode problems with their own run and assert helpers, run in the real sandbox: the run helper
calls the solution in the child (in-place methods), the assert helper judges in the host."""

import json

import pytest

from sandbox.config import SandboxConfig
from sandbox.pool import run_batch
from sandbox.verdicts import Job, child_payload, count_tests
from sandbox.verdicts import TestSpecError as SpecError  # (a Test* name pytest would try to collect)
from tasks.problems.bundled import leetcode_folder, load_leetcode

FAST = SandboxConfig(timeout_s=10.0, workers=2)


@pytest.fixture(scope="module")
def problems():
    return {p["meta"]["slug"]: p for p in load_leetcode().problems}


def verdicts(problems, *pairs):
    """(slug, code) pairs → their verdicts, in one batch."""
    return run_batch([Job(slug, str(i), code, problems[slug]["tests"]) for i, (slug, code) in enumerate(pairs)], FAST)


GROUP_ANAGRAMS = """
class Solution:
    def group_anagrams(self, strs):
        groups = {}
        for s in reversed(strs):  # groups and their members in another order than expected
            groups.setdefault(''.join(sorted(s)), []).append(s)
        return list(groups.values())[::-1]
"""


def test_more_than_1100_leetcode_problems_convert():
    result = load_leetcode()
    assert len(result.problems) >= 1100 and result.reconciles()
    assert {"custom_comparison", "non_plain_test_values"}.isdisjoint(result.skipped)


def test_an_order_free_answer_passes_the_problems_own_checker_and_a_wrong_one_fails(problems):
    tests = problems["group_anagrams"]["tests"]
    payload = json.dumps(child_payload(Job("leetcode/49", "s", GROUP_ANAGRAMS, tests)))
    assert tests["compare"] == "helper"
    assert (
        tests["helper"]["body"] not in payload and json.dumps(tests["outputs"][0]) not in payload
    )  # both stay in the host
    right, wrong = verdicts(
        problems,
        ("group_anagrams", GROUP_ANAGRAMS),
        ("group_anagrams", GROUP_ANAGRAMS.replace("return list", "return [[s] for s in strs] or list")),
    )
    assert (right.status, right.passed) == ("passed", right.total)
    assert wrong.status == "failed" and "rejected by the problem's checker" in wrong.detail


def test_a_float_answer_passes_within_the_checkers_tolerance_only(problems):
    code = "class Solution:\n    def my_pow(self, x, n):\n        return x ** n + {}\n"
    close, off = verdicts(problems, ("powx_n", code.format("1e-7")), ("powx_n", code.format("1e-3")))
    assert close.status == "passed" and off.status == "failed" and off.passed == 0


ROTATE_IN_PLACE = """
class Solution:
    def rotate(self, nums, k):
        k %= len(nums)
        nums[:] = nums[len(nums) - k:] + nums[:len(nums) - k]
"""
ROTATE_RETURNED = """
class Solution:
    def rotate(self, nums, k):
        return nums[-k:] + nums[:-k]  # leaves nums as it was
"""
WIGGLE_IN_PLACE = """
class Solution:
    def wiggle_sort(self, nums):
        for i in range(1, len(nums)):
            if (i % 2 == 1) == (nums[i] < nums[i - 1]):
                nums[i], nums[i - 1] = nums[i - 1], nums[i]
"""


def test_an_in_place_method_is_judged_on_the_argument_it_changed(problems):
    assert problems["rotate_array"]["tests"]["harness"]["function"] == "run_rotate"
    right, wrong = verdicts(problems, ("rotate_array", ROTATE_IN_PLACE), ("rotate_array", ROTATE_RETURNED))
    assert (right.status, right.passed) == ("passed", right.total)
    assert wrong.status == "failed" and wrong.passed < wrong.total


def test_an_in_place_method_with_an_order_free_checker(problems):
    tests = problems["wiggle_sort"]["tests"]
    assert "harness" in tests and tests["compare"] == "helper"
    sorted_only = "class Solution:\n    def wiggle_sort(self, nums):\n        nums.sort()\n"
    right, wrong = verdicts(problems, ("wiggle_sort", WIGGLE_IN_PLACE), ("wiggle_sort", sorted_only))
    assert right.status == "passed" and wrong.status == "failed"


def test_a_value_the_checker_cannot_read_is_a_failed_case_not_a_crash(problems):
    shapes = ["[1, 2]", "[[1, [2]], None]", "None", "{'a': 1}", "'text'"]  # the checker raises on the first three
    codes = [f"class Solution:\n    def group_anagrams(self, strs):\n        return {shape}\n" for shape in shapes]
    results = verdicts(problems, *(("group_anagrams", code) for code in codes))
    assert [v.status for v in results] == ["failed"] * len(shapes)
    assert all("the problem's checker raised TypeError" in v.detail for v in results[:3])


def test_a_helper_that_is_not_the_packages_own_is_refused(problems):
    tests = json.loads(json.dumps(problems["group_anagrams"]["tests"]))
    tests["helper"]["body"] = "    return True"  # would pass everything, and runs in the host
    with pytest.raises(SpecError, match="helper.body differs from helpers_assert_body in .*group_anagrams.json"):
        count_tests("leetcode/49", tests)
    [verdict] = run_batch([Job("leetcode/49", "s", GROUP_ANAGRAMS, tests)], FAST)
    assert verdict.status == "infra_error" and "differs from helpers_assert_body" in verdict.detail
    with pytest.raises(SpecError, match="helpers run only from"):
        count_tests("p", {**tests, "helper": {**tests["helper"], "package": "mine"}})


def test_arguments_follow_the_run_helpers_order_and_list_cases_unpack(problems):
    importance = problems["maximum_total_importance_of_roads"][
        "tests"
    ]  # parametrize (roads, n), run(Solution, n, roads)
    assert importance["inputs"][0] == [5, [[0, 1], [1, 2], [2, 3], [0, 2], [1, 3], [2, 4]]]
    grid = problems["shift_2d_grid"]["tests"]  # cases written as lists, which pytest unpacks like tuples
    assert grid["inputs"][0] == [[[1, 2, 3], [4, 5, 6], [7, 8, 9]], 1]
    assert grid["outputs"][0] == [[9, 1, 2], [3, 4, 5], [6, 7, 8]]


def test_a_broken_helper_in_a_problem_file_is_quarantined_with_file_and_field(tmp_path):
    raw = json.loads((leetcode_folder() / "group_anagrams.json").read_text())
    (tmp_path / "group_anagrams.json").write_text(json.dumps({**raw, "helpers_assert_signature": "(result, expected"}))
    raw = json.loads((leetcode_folder() / "rotate_array.json").read_text())
    (tmp_path / "rotate_array.json").write_text(
        json.dumps({**raw, "helpers_run_signature": "(solution_class: type, nums)"})
    )
    result = load_leetcode(tmp_path)
    assert not result.problems and result.reconciles()
    messages = sorted(q.message for q in result.quarantined)
    assert messages[0].startswith("group_anagrams.json row 1: helpers_assert_signature: not a Python signature")
    assert messages[1] == (
        "rotate_array.json row 1: helpers_run_signature: takes (solution_class: type, nums) "
        "but the test passes Solution, nums, k"
    )
