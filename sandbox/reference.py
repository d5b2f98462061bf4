"""Turn ``check`` / ``assert`` tests into ``call`` tests by recording a reference solution.

The reference runs once, in the sandbox, under the problem's own tests; every top-level call of
the entry point and its result is recorded (strict JSON, tuples kept as tuples). A candidate is
then verified as a ``call`` test: only the recorded inputs enter the sandbox and the host compares
the results, so a solution that forges its assert results gains nothing. Conversions are cached per
(tests, reference) for the life of the process; callers that store problems (the load-problems
stage) keep the converted tests in their artifact.

A conversion is refused (and the original tests kept, with the reason) when the reference fails
its own tests, makes no call, calls with keyword arguments, or returns something that is not
strict JSON (a set, an object). Recorded tests are at least as strict as the original ones: a test
that accepted several answers (HumanEval/32 asks for any root) now asks for the reference's.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from sandbox.config import SandboxConfig
from sandbox.pool import pool_for
from sandbox.verdicts import ChildRun

ASSERTED_CALL = re.compile(
    r"^\s*assert\s+(?:not\s+)?\(*\s*(?:set\(|sorted\(|abs\(|math\.isclose\()?\s*([A-Za-z_]\w*)\s*\("
)
_cache: dict[str, Conversion] = {}


@dataclass(frozen=True)
class Conversion:
    tests: dict[str, Any]  # call tests, or the original tests when not converted
    converted: bool
    reason: str = ""


def function_under_test(tests: dict[str, Any]) -> str | None:
    if tests.get("entry_point"):
        return tests["entry_point"]
    if tests.get("fn_name"):
        return tests["fn_name"]
    names = {m.group(1) for line in tests.get("asserts", []) if (m := ASSERTED_CALL.match(line))}
    names.discard("isinstance")
    return names.pop() if len(names) == 1 else None


def _key(tests: dict[str, Any], reference: str) -> str:
    return hashlib.sha256(json.dumps([tests, reference], sort_keys=True).encode()).hexdigest()


def record_payload(tests: dict[str, Any], reference: str, fn_name: str) -> dict[str, Any]:
    return {
        "kind": "record",
        "code": reference,
        "setup": tests.get("setup", ""),
        "fn_name": fn_name,
        "test_code": tests.get("test_code"),
        "asserts": tests.get("asserts"),
    }


def conversion_from_run(tests: dict[str, Any], fn_name: str, run: ChildRun | str) -> Conversion:
    if isinstance(run, str):
        return Conversion(tests, False, run)
    records = run.records
    if not records or records[0] != {"ready": True}:
        return Conversion(tests, False, f"the recording run failed to start: {run.stderr[-200:]}")
    recorded = next((r["recorded"] for r in records[1:] if "recorded" in r), None)
    if recorded is None:
        failure = next((r.get("load_error") for r in records[1:] if "load_error" in r), None)
        why = failure or ("wall-clock limit reached" if run.timed_out else "no recording came back")
        if why.startswith("NotJsonType"):
            return Conversion(tests, False, f"a recorded value is not strict JSON: {why}")
        return Conversion(tests, False, f"the reference did not pass its own tests: {why}")
    if not recorded:
        return Conversion(tests, False, "the tests never call the function")
    call_tests = {
        "kind": "call",
        "fn_name": fn_name,
        "setup": tests.get("setup", ""),
        "typed": True,
        "inputs": [args for args, _ in recorded],
        "outputs": [value for _, value in recorded],
        "recorded_from": tests["kind"],
    }
    if all(isinstance(value, bool) for _, value in recorded) and truth_only_asserts(tests, fn_name):
        call_tests["compare"] = "truthy"  # as the original asserts: any truthy (falsy) value passes
    return Conversion(call_tests, True)


def truth_only_asserts(tests: dict[str, Any], fn_name: str) -> bool:
    """True when every assert that calls the function under test (``candidate`` in a HumanEval check)
    only tests the truth of its result: ``assert f(x)`` or ``assert not f(x)`` (HumanEval/52, /56,
    /61). Recorded as exact ``True``/``False`` such a test would be stricter than the original."""
    import ast

    source = tests.get("test_code") if tests["kind"] == "check" else "\n".join(tests.get("asserts") or [])
    names = {"candidate", fn_name} if tests["kind"] == "check" else {fn_name}
    try:
        tree = ast.parse(source or "")
    except SyntaxError:
        return False

    def calls_function(node: ast.AST) -> bool:
        return any(
            isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in names for n in ast.walk(node)
        )

    def truth_only(test: ast.expr) -> bool:
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
            test = test.operand
        return isinstance(test, ast.Call) and isinstance(test.func, ast.Name) and test.func.id in names

    asserts = [node for node in ast.walk(tree) if isinstance(node, ast.Assert) and calls_function(node.test)]
    return bool(asserts) and all(truth_only(node.test) for node in asserts)


def convert_tests(items: list[tuple[dict[str, Any], str | None]], cfg: SandboxConfig) -> list[Conversion]:
    """For each (tests, reference): call tests recorded from the reference, or the tests unchanged."""
    out: list[Conversion | None] = [None] * len(items)
    todo: list[tuple[int, str, str, dict]] = []
    for index, (tests, reference) in enumerate(items):
        if tests.get("kind") not in ("check", "assert"):
            out[index] = Conversion(tests, False, "already decided in the host")
            continue
        if not reference:
            out[index] = Conversion(tests, False, "no reference solution to record")
            continue
        fn_name = function_under_test(tests)
        if not fn_name:
            out[index] = Conversion(tests, False, "cannot tell which function the asserts test")
            continue
        key = _key(tests, reference)
        if key in _cache:
            out[index] = _cache[key]
        else:
            todo.append((index, key, fn_name, record_payload(tests, reference, fn_name)))
    if todo:
        runs = pool_for(cfg).execute([payload for *_, payload in todo])
        for (index, key, fn_name, _), run in zip(todo, runs):
            conversion = conversion_from_run(items[index][0], fn_name, run)
            if not isinstance(run, str):  # sandbox failures are not remembered
                _cache[key] = conversion
            out[index] = conversion
    return out
