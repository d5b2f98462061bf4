"""Jobs in, verdicts out: the records and the comparisons the parent makes.

Expected values stay in this (trusted) process. A test case passes only when the child sent back a
strictly typed value for it and that value equals the expected one here.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

STATUSES = ("passed", "failed", "timeout", "memory", "error", "infra_error")
TEST_KINDS = ("call", "stdio", "assert", "check")


class TestSpecError(ValueError):
    """A problem's tests cannot be run as given (names the problem and what is wrong)."""


@dataclass(frozen=True)
class Job:
    problem_id: str
    solution_id: str
    code: str | None  # the code to execute; None when the response had no code block
    tests: dict[str, Any]

    def dedup_key(self) -> str:
        payload = json.dumps([self.tests, normalize_code(self.code or "")], sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()


@dataclass
class Verdict:
    problem_id: str
    solution_id: str
    status: str
    passed: int
    total: int
    detail: str = ""
    seconds: float = field(default=0.0, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def normalize_code(code: str) -> str:
    """Trailing whitespace and blank lines do not change what code does."""
    lines = [line.rstrip() for line in code.replace("\r\n", "\n").split("\n")]
    return "\n".join(line for line in lines if line)


def count_tests(problem_id: str, tests: dict[str, Any]) -> int:
    """How many test cases a spec holds; raises TestSpecError on a malformed spec."""
    kind = tests.get("kind")
    if kind not in TEST_KINDS:
        raise TestSpecError(f"{problem_id}: tests.kind is {kind!r}; expected one of {TEST_KINDS}")
    if kind in ("call", "stdio"):
        inputs, outputs = tests.get("inputs"), tests.get("outputs")
        if not isinstance(inputs, list) or not isinstance(outputs, list):
            raise TestSpecError(f"{problem_id}: tests.inputs and tests.outputs must be lists")
        if len(inputs) != len(outputs):
            raise TestSpecError(
                f"{problem_id}: tests.inputs has {len(inputs)} items, tests.outputs has {len(outputs)}"
            )
        if kind == "call" and not tests.get("fn_name"):
            raise TestSpecError(f"{problem_id}: call tests need tests.fn_name")
        return len(inputs)
    if kind == "assert":
        asserts = tests.get("asserts")
        if not isinstance(asserts, list) or not asserts:
            raise TestSpecError(f"{problem_id}: assert tests need a non-empty tests.asserts list")
        return len(asserts)
    if not tests.get("test_code") or not tests.get("entry_point"):
        raise TestSpecError(f"{problem_id}: check tests need tests.test_code and tests.entry_point")
    return 1


def child_payload(job: Job) -> dict[str, Any]:
    """What enters the sandbox: code and inputs, never expected outputs of call/stdio tests."""
    tests = job.tests
    payload = {"kind": tests["kind"], "code": job.code, "setup": tests.get("setup", "")}
    if tests["kind"] == "call":
        payload.update(inputs=tests["inputs"], fn_name=tests["fn_name"], class_name=tests.get("class_name"))
    elif tests["kind"] == "stdio":
        payload.update(inputs=tests["inputs"])
    elif tests["kind"] == "assert":
        payload.update(asserts=tests["asserts"])
    else:
        payload.update(test_code=tests["test_code"], entry_point=tests["entry_point"])
    return payload


def decode_special_floats(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__float__"}:
            return float(value["__float__"])
        return {k: decode_special_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_special_floats(v) for v in value]
    return value


def values_equal(got: Any, expected: Any, rel_tol: float = 1e-6, abs_tol: float = 1e-6) -> bool:
    """Strict structural equality; floats (on either side) compare with a tolerance."""
    if isinstance(expected, tuple):
        expected = list(expected)
    if type(expected) is float or (type(got) is float and type(expected) is int):
        if type(got) not in (int, float):
            return False
        return math.isclose(got, expected, rel_tol=rel_tol, abs_tol=abs_tol) or got == expected
    if type(got) is not type(expected):
        return False
    if isinstance(expected, list):
        return len(got) == len(expected) and all(values_equal(g, e) for g, e in zip(got, expected))
    if isinstance(expected, dict):
        return got.keys() == expected.keys() and all(values_equal(got[k], expected[k]) for k in expected)
    return got == expected


def _sort_key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def output_matches(got: Any, expected: Any, tests: dict[str, Any]) -> bool:
    """Compare one returned value with the expected one using the spec's comparison mode."""
    kind = tests["kind"]
    if kind == "stdio":
        return isinstance(got, str) and normalize_stdout(got) == normalize_stdout(expected)
    if kind in ("assert", "check"):
        return got is True
    got = decode_special_floats(got)
    if tests.get("compare") == "sorted":
        if not isinstance(got, list) or not isinstance(expected, (list, tuple)):
            return False
        got, expected = sorted(got, key=_sort_key), sorted(expected, key=_sort_key)
    return values_equal(got, expected)


def normalize_stdout(text: str) -> str:
    return "\n".join(line.rstrip() for line in str(text).strip().splitlines())


def expected_outputs(tests: dict[str, Any], total: int) -> list[Any]:
    if tests["kind"] in ("call", "stdio"):
        return list(tests["outputs"])
    return [True] * total
