"""The program that runs untrusted code, one solution per process (executed as a script).

Usage (by the parent only): ``python -I -B child.py JOB_JSON_PATH RESULT_FD``.

It reads and deletes the job file, applies its resource limits, reports ``ready`` and then runs
every test case of the solution, writing one JSON line per case to RESULT_FD. For ``call`` and
``stdio`` tests the job holds only inputs; the parent compares what comes back with expected
values that never enter this process. Return values leave as strict JSON: exact built-in types
only. This file imports nothing from the project so that it runs under ``python -I``.
"""

import io
import json
import os
import resource
import sys

MB = 1024 * 1024


def apply_limits(limits):
    pairs = [
        (resource.RLIMIT_AS, limits["memory_mb"] * MB),
        (resource.RLIMIT_CPU, limits["cpu_s"]),
        (resource.RLIMIT_FSIZE, limits["file_mb"] * MB),
        (resource.RLIMIT_NOFILE, limits["open_files"]),
        (resource.RLIMIT_CORE, 0),
    ]
    for which, value in pairs:
        resource.setrlimit(which, (value, value))


class NotJsonType(TypeError):
    pass


def to_strict_json(value, depth=0):
    """Exact built-in types only (no subclasses): tuples become lists, dict keys must be str."""
    if depth > 100:
        raise NotJsonType("return value nested deeper than 100 levels")
    kind = type(value)
    if value is None or kind in (bool, int, str):
        return value
    if kind is float:
        if value != value or value in (float("inf"), float("-inf")):
            return {"__float__": repr(value)}
        return value
    if kind in (list, tuple):
        return [to_strict_json(v, depth + 1) for v in value]
    if kind is dict:
        out = {}
        for key, item in value.items():
            if type(key) is not str:
                raise NotJsonType(f"dict key of type {type(key).__name__} is not a JSON key")
            out[key] = to_strict_json(item, depth + 1)
        return out
    raise NotJsonType(f"return value of type {kind.__name__} is not a built-in JSON type")


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


class Reporter:
    def __init__(self, fd):
        self.fd = fd

    def send(self, record):
        data = (json.dumps(record) + "\n").encode()
        view = memoryview(data)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]


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
    for index, args in enumerate(job["inputs"]):
        try:
            if job.get("class_name") and job["class_name"] in namespace:
                target = resolve_callable(namespace, job["fn_name"], job["class_name"])
            value = to_strict_json(target(*args))
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


def run_asserts(job, report):
    namespace = {"__name__": "solution"}
    load_program(job["setup"] + "\n" + job["code"], namespace)
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
    candidate = namespace[job["entry_point"]]

    def copied_candidate(*args, **kwargs):
        return exact_copy(candidate(*args, **kwargs))

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


RUNNERS = {"call": run_call, "stdio": run_stdio, "assert": run_asserts, "check": run_check}


def main():
    job_path, result_fd = sys.argv[1], int(sys.argv[2])
    with open(job_path) as handle:
        job = json.load(handle)
    os.unlink(job_path)
    report = Reporter(result_fd)
    apply_limits(job["limits"])
    sys.setrecursionlimit(job["limits"].get("recursion", 10000))
    sys.argv = ["solution"]
    report.send({"ready": True})
    try:
        RUNNERS[job["kind"]](job, report)
    except BaseException as exc:  # noqa: BLE001 - a solution that fails to load
        kind = "memory" if isinstance(exc, MemoryError) else "error"
        report.send({"load_error": describe(exc), "k": kind})
    report.send({"done": True})
    os._exit(0)


if __name__ == "__main__":
    main()
