"""What runs inside the forked, confined child: one solution, all of its test cases.

Imported by the worker (``sandbox/worker.py``) under ``python -I``, so it imports nothing from the
project. The child reports ``ready`` and then one JSON line per test case into a results region
shared with the worker (no syscall and no wake-up of the worker per test). For ``call`` and
``stdio`` tests only inputs are here; the host compares what comes back with expected values that
never enter the sandbox. Return values leave as strict JSON: exact built-in types only (tuples are
tagged when the test asks for ``typed`` values). ``record`` runs a trusted reference under a
problem's ``check``/``assert`` tests and reports every top-level call and its result, so that the
host can turn those tests into ``call`` tests.
"""

import io
import json
import os
import sys


class NotJsonType(TypeError):
    pass


def to_strict_json(value, depth=0, typed=False):
    """Exact built-in types only (no subclasses); dict keys must be str. Tuples become lists,
    or ``{"__tuple__": [...]}`` when ``typed``."""
    if depth > 100:
        raise NotJsonType("return value nested deeper than 100 levels")
    kind = type(value)
    if value is None or kind in (bool, int, str):
        return value
    if kind is float:
        if value != value or value in (float("inf"), float("-inf")):
            return {"__float__": repr(value)}
        return value
    if kind is tuple and typed:
        return {"__tuple__": [to_strict_json(v, depth + 1, typed) for v in value]}
    if kind in (list, tuple):
        return [to_strict_json(v, depth + 1, typed) for v in value]
    if kind is dict:
        out = {}
        for key, item in value.items():
            if type(key) is not str:
                raise NotJsonType(f"dict key of type {type(key).__name__} is not a JSON key")
            out[key] = to_strict_json(item, depth + 1, typed)
        return out
    raise NotJsonType(f"return value of type {kind.__name__} is not a built-in JSON type")


def from_typed_json(value):
    """Inverse of ``to_strict_json(typed=True)`` for recorded inputs."""
    if type(value) is dict:
        if len(value) == 1 and "__tuple__" in value:
            return tuple(from_typed_json(v) for v in value["__tuple__"])
        if len(value) == 1 and "__float__" in value:
            return float(value["__float__"])
        return {k: from_typed_json(v) for k, v in value.items()}
    if type(value) is list:
        return [from_typed_json(v) for v in value]
    return value


def exact_copy(value, depth=0):
    """A copy of a return value rebuilt from exact built-in types (for in-sandbox asserts)."""
    if depth > 100:
        raise NotJsonType("return value nested deeper than 100 levels")
    kind = type(value)
    if value is None or kind in (bool, int, float, str, bytes, complex):
        return value
    if kind in (list, tuple, set, frozenset):
        return kind(exact_copy(v, depth + 1) for v in value)
    if kind is dict:
        return {exact_copy(k, depth + 1): exact_copy(v, depth + 1) for k, v in value.items()}
    raise NotJsonType(f"return value of type {kind.__name__} is not a built-in type")


def describe(exc):
    text = f"{type(exc).__name__}: {exc}"
    return text[:300]


RESULTS_HEADER = 16  # bytes 0-7: end of the records (little endian); byte 8: 1 when they overflowed
OVERFLOW_FLAG = 8


class Reporter:
    """Appends JSON lines to the shared results region (an ``mmap`` the worker reads once this
    process and everything it started are gone). A record that does not fit ends the run."""

    def __init__(self, region):
        self.region, self.end = region, RESULTS_HEADER

    def send(self, record):
        data = (json.dumps(record) + "\n").encode()
        end = self.end + len(data)
        if end > len(self.region):
            self.region[OVERFLOW_FLAG] = 1
            os._exit(0)
        self.region[self.end : end] = data
        self.region[0:8] = end.to_bytes(8, "little")
        self.end = end


def read_results(region):
    """What a run left in the region: (its JSON lines as text, whether they overflowed). The end
    marker is the child's word, so it is clamped to the region."""
    end = min(max(int.from_bytes(region[0:8], "little"), RESULTS_HEADER), len(region))
    return region[RESULTS_HEADER:end].decode(errors="replace"), region[OVERFLOW_FLAG] == 1


def error_record(index, exc):
    kind = "memory" if isinstance(exc, MemoryError) else "error"
    return {"t": index, "e": describe(exc), "k": kind}


def load_program(source, namespace):
    code = compile(source, "<solution>", "exec")
    exec(code, namespace)


def resolve_callable(namespace, fn_name, class_name):
    if class_name and class_name in namespace:
        return getattr(namespace[class_name](), fn_name)
    if fn_name in namespace and callable(namespace[fn_name]):
        return namespace[fn_name]
    where = f"class {class_name}" if class_name else "the solution"
    raise NameError(f"{fn_name} is not defined in {where}")


def run_call(job, report):
    namespace = {"__name__": "solution"}
    load_program(job["setup"] + "\n" + job["code"], namespace)
    target = resolve_callable(namespace, job["fn_name"], job.get("class_name"))
    typed = bool(job.get("typed"))
    for index, args in enumerate(job["inputs"]):
        try:
            if typed:
                args = from_typed_json(args)
            if job.get("class_name") and job["class_name"] in namespace:
                target = resolve_callable(namespace, job["fn_name"], job["class_name"])
            value = to_strict_json(target(*args), typed=typed)
        except BaseException as exc:  # noqa: BLE001 - the solution may raise anything
            report.send(error_record(index, exc))
            continue
        report.send({"t": index, "v": value})


def run_stdio(job, report):
    program = compile(job["setup"] + "\n" + job["code"], "<solution>", "exec")
    real_stdin, real_stdout = sys.stdin, sys.stdout
    for index, stdin_text in enumerate(job["inputs"]):
        captured = io.StringIO()
        sys.stdin, sys.stdout = io.StringIO(stdin_text), captured
        try:
            exec(program, {"__name__": "__main__"})
        except SystemExit:
            pass
        except BaseException as exc:  # noqa: BLE001
            sys.stdin, sys.stdout = real_stdin, real_stdout
            report.send(error_record(index, exc))
            continue
        sys.stdin, sys.stdout = real_stdin, real_stdout
        report.send({"t": index, "v": captured.getvalue()})


def copied(function):
    def copied_function(*args, **kwargs):
        return exact_copy(function(*args, **kwargs))

    return copied_function


def run_asserts(job, report):
    namespace = {"__name__": "solution"}
    load_program(job["setup"] + "\n" + job["code"], namespace)
    fn_name = job.get("fn_name")
    if fn_name and callable(namespace.get(fn_name)):
        namespace[fn_name] = copied(namespace[fn_name])
    for index, line in enumerate(job["asserts"]):
        try:
            exec(compile(line, f"<test {index}>", "exec"), namespace)
        except AssertionError:
            report.send({"t": index, "v": False})  # a wrong answer, not a crash
            continue
        except BaseException as exc:  # noqa: BLE001
            report.send(error_record(index, exc))
            continue
        report.send({"t": index, "v": True})


def run_check(job, report):
    namespace = {"__name__": "solution"}
    load_program(job["setup"] + "\n" + job["code"], namespace)
    if job["entry_point"] not in namespace:
        raise NameError(f"{job['entry_point']} is not defined")
    copied_candidate = copied(namespace[job["entry_point"]])
    test_namespace = dict(namespace)  # tests may call helpers the solution defines (HumanEval/32)
    try:
        exec(compile(job["test_code"], "<tests>", "exec"), test_namespace)
        test_namespace["check"](copied_candidate)
    except AssertionError:
        report.send({"t": 0, "v": False})  # a wrong answer, not a crash
        return
    except BaseException as exc:  # noqa: BLE001
        report.send(error_record(0, exc))
        return
    report.send({"t": 0, "v": True})


def run_record(job, report):
    """Run a reference solution under its check/assert tests, recording each top-level call.
    ``random`` is seeded first: tests that draw their inputs (HumanEval/38, /50, …) record the same
    inputs on every run, so a stored problem set, and its content-hash id, is reproducible."""
    import random

    random.seed(0)
    namespace = {"__name__": "solution"}
    load_program(job["setup"] + "\n" + job["code"], namespace)
    fn_name = job["fn_name"]
    if not callable(namespace.get(fn_name)):
        raise NameError(f"{fn_name} is not defined by the reference solution")
    target, calls, depth = namespace[fn_name], [], [0]

    def recorder(*args, **kwargs):
        if depth[0]:  # a recursive call through the global name: not a test case
            return target(*args, **kwargs)
        if kwargs:
            raise NotJsonType("the tests call the function with keyword arguments")
        frozen = to_strict_json(list(args), typed=True)
        depth[0] += 1
        try:
            value = target(*args)
        finally:
            depth[0] -= 1
        calls.append([frozen, to_strict_json(value, typed=True)])
        return value

    namespace[fn_name] = recorder
    if job.get("test_code"):
        test_namespace = dict(namespace)
        exec(compile(job["test_code"], "<tests>", "exec"), test_namespace)
        test_namespace["check"](recorder)
    else:
        for index, line in enumerate(job["asserts"]):
            exec(compile(line, f"<test {index}>", "exec"), namespace)
    report.send({"recorded": calls})


RUNNERS = {"call": run_call, "stdio": run_stdio, "assert": run_asserts, "check": run_check, "record": run_record}


def execute(job, region):
    """Run one job in this (already confined) process and end it; never returns."""
    report = Reporter(region)
    try:
        sys.setrecursionlimit(job["limits"].get("recursion", 10000))
        sys.argv = ["solution"]
        report.send({"ready": True})
        try:
            RUNNERS[job["kind"]](job, report)
        except BaseException as exc:  # noqa: BLE001 - a solution that fails to load
            kind = "memory" if isinstance(exc, MemoryError) else "error"
            report.send({"load_error": describe(exc), "k": kind})
        report.send({"done": True})
    finally:
        os._exit(0)
