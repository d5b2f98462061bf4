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
        payload.update(inputs=tests["inputs"], fn_name=tests["fn_name"], class_name=tests.get("class_name"),
                       typed=bool(tests.get("typed")))
    elif tests["kind"] == "stdio":
        payload.update(inputs=tests["inputs"])
    elif tests["kind"] == "assert":
        payload.update(asserts=tests["asserts"], fn_name=tests.get("fn_name"))
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
        if math.isnan(got) and math.isnan(expected):
            return True
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
    got, expected = decode_special_floats(got), decode_special_floats(expected)
    if tests.get("compare") == "maybe_wrapped":  # APPS/TACO call tests: the expected value may come wrapped in a list
        wrapped = isinstance(expected, list) and len(expected) == 1 and values_equal(got, expected[0])
        return wrapped or values_equal(got, expected)
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


@dataclass
class ChildRun:
    records: list[dict[str, Any]]
    stderr: str
    timed_out: bool
    output_capped: bool
    returncode: int | None
    seconds: float


def judge(job: Job, total: int, run: ChildRun) -> Verdict:
    """Decide the verdict from what the child reported; expected values never left this process."""
    base = dict(problem_id=job.problem_id, solution_id=job.solution_id, total=total, seconds=run.seconds)
    records = run.records
    if not records or records[0] != {"ready": True}:
        why = records[0].get("confine_error", "") if records else ""
        detail = f"sandbox child failed before running the solution (exit {run.returncode}) {why} {run.stderr[-300:]}"
        return Verdict(status="infra_error", passed=0, detail=detail.strip(), **base)
    results: dict[int, dict[str, Any]] = {}
    load_error = None
    for record in records[1:]:
        if "load_error" in record and load_error is None:
            load_error = record
        index = record.get("t")
        if type(index) is int and 0 <= index < total and index not in results:
            results[index] = record
    if load_error is not None:
        status = "memory" if load_error.get("k") == "memory" else "error"
        return Verdict(status=status, passed=0, detail=str(load_error["load_error"])[:300], **base)
    expected = expected_outputs(job.tests, total)
    passed, first_status, first_detail = 0, None, ""
    for index in range(total):
        record = results.get(index)
        if record is not None and "v" in record and output_matches(record["v"], expected[index], job.tests):
            passed += 1
            continue
        if first_status is not None:
            continue
        if record is None:
            first_status = "timeout" if run.timed_out else "error"
            first_detail = _missing_detail(index, run)
        elif "e" in record:
            first_status = "memory" if record.get("k") == "memory" else "error"
            first_detail = f"test {index}: {record['e']}"
        else:
            first_status = "failed"
            shown = "assertion failed" if job.tests["kind"] in ("assert", "check") else json.dumps(record.get("v"))[:150]
            first_detail = f"test {index}: wrong answer {shown}"
    if passed == total and not run.output_capped:
        return Verdict(status="passed", passed=passed, detail="", **base)
    if run.output_capped:
        first_status, first_detail = "error", "output limit exceeded"
    return Verdict(status=first_status or "failed", passed=passed, detail=first_detail[:300], **base)


def _missing_detail(index: int, run: ChildRun) -> str:
    if run.timed_out:
        return f"test {index}: wall-clock limit reached"
    if run.returncode and run.returncode < 0:
        return f"test {index}: process killed by signal {-run.returncode}"
    return f"test {index}: the process ended before reporting a result (exit {run.returncode})"
