"""What the child writes into its results region is parsed in the host: a forged record must not
take the host down, whatever its shape."""

from sandbox.config import SandboxConfig
from sandbox.pool import run_batch
from sandbox.protocol import MAX_RECORD_DEPTH, parse_records
from sandbox.verdicts import Job

FORGES_A_DEEP_RECORD = """
import sys
def add(a, b):
    report = sys._getframe(1).f_locals["report"]  # the runner's Reporter, one frame up
    data = ('{"t": 0, "v": ' + '[' * 100000 + ']' * 100000 + '}\\n').encode()
    report.region[report.end:report.end + len(data)] = data
    report.end += len(data)
    report.region[0:8] = report.end.to_bytes(8, "little")
    return a + b + 1
"""


def test_a_record_nested_past_the_limit_is_garbage_not_a_recursion_error():
    deep = '{"t": 0, "v": ' + "[" * 100000 + "]" * 100000 + "}"
    just_deep = '{"t": 1, "v": ' + "[" * MAX_RECORD_DEPTH + "]" * MAX_RECORD_DEPTH + "}"
    wide = '{"t": 2, "v": ' + "[" + ", ".join(["[1]"] * 500) + "]}"
    records = parse_records("\n".join([deep, just_deep, wide]))
    assert records == [{"garbage": True}, {"garbage": True}, {"t": 2, "v": [[1]] * 500}]


def test_a_solution_that_forges_a_deep_record_gets_a_verdict():
    tests = {"kind": "call", "fn_name": "add", "inputs": [[1, 2]], "outputs": [3]}
    [verdict] = run_batch([Job("p", "s", FORGES_A_DEEP_RECORD, tests)], SandboxConfig(timeout_s=5.0, workers=1))
    assert verdict.status == "failed" and verdict.passed == 0  # its own (wrong) answer is judged, the forgery ignored


def test_truthy_comparison_accepts_what_a_truth_only_assert_accepts():
    from sandbox.reference import truth_only_asserts
    from sandbox.verdicts import output_matches

    truthy = {"kind": "call", "compare": "truthy"}
    assert output_matches(1, True, truthy) and output_matches([], False, truthy) and output_matches(0, False, truthy)
    assert not output_matches("x", False, truthy) and not output_matches(None, True, truthy)
    assert not output_matches(1, True, {"kind": "call"})
    check = {
        "kind": "check",
        "test_code": "def check(candidate):\n    assert candidate(1)\n    assert not candidate(2)\n",
    }
    assert truth_only_asserts(check, "f")
    mixed = {
        "kind": "check",
        "test_code": "def check(candidate):\n    assert candidate(1)\n    assert candidate(2) == False\n",
    }
    assert not truth_only_asserts(mixed, "f")
    asserts = {"kind": "assert", "asserts": ["assert not is_odd(2)", "assert is_odd(3)"]}
    assert truth_only_asserts(asserts, "is_odd") and not truth_only_asserts(
        {"kind": "check", "test_code": "x = 1"}, "f"
    )
