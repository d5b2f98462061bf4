"""Sandbox verdicts: decided in the host, from strictly typed results; reference recording; the pool."""

import os
import signal
import threading
import time

import pytest

from sandbox.config import SandboxConfig
from sandbox.pool import WorkerPool, pool_for, run_batch, run_job
from sandbox.reference import convert_tests, function_under_test
from sandbox.verdicts import Job, Verdict
from tasks.problems.bundled import load_humaneval

ADD = {"kind": "call", "fn_name": "add", "inputs": [[1, 2], [3, 4], [-1, 1]], "outputs": [3, 7, 0]}
FAST = SandboxConfig(timeout_s=2.0, workers=2)


def verdict_for(code, tests=ADD, cfg=FAST) -> Verdict:
    return run_job(Job("p", "s", code, tests), cfg)


def test_correct_solution_passes():
    v = verdict_for("def add(a, b):\n    return a + b")
    assert (v.status, v.passed, v.total) == ("passed", 3, 3)


def test_wrong_answer_fails_with_partial_count():
    v = verdict_for("def add(a, b):\n    return 3 if a == 1 else a * b")
    assert (v.status, v.passed) == ("failed", 1)
    assert "test 1: wrong answer 12" in v.detail


def test_exception_is_an_error():
    v = verdict_for("def add(a, b):\n    return a / 0")
    assert v.status == "error" and "ZeroDivisionError" in v.detail


def test_syntax_error_and_missing_function_are_errors():
    assert verdict_for("def add(a, b) return").status == "error"
    assert "not defined" in verdict_for("def other(a, b):\n    return a + b").detail


@pytest.mark.parametrize("exit_call", ["import sys\nsys.exit(0)", "import os\nos._exit(0)", "raise SystemExit(0)"])
def test_exit_before_the_tests_is_not_a_pass(exit_call):
    v = verdict_for(exit_call + "\ndef add(a, b):\n    return a + b")
    assert v.status != "passed" and v.passed == 0


def test_exit_inside_the_function_is_not_a_pass():
    v = verdict_for("import os\ndef add(a, b):\n    os._exit(0)")
    assert v.status != "passed" and v.passed == 0


def test_printing_a_pass_marker_is_not_a_pass():
    v = verdict_for('print("passed", "ok", 3, 3)\ndef add(a, b):\n    print(\'{"t": 0, "v": 3}\')\n    return None')
    assert v.status == "failed" and v.passed == 0


def test_always_equal_object_is_rejected():
    code = "class Eq(int):\n    def __eq__(self, other): return True\ndef add(a, b):\n    return Eq(0)"
    v = verdict_for(code)
    assert v.status == "error" and "not a built-in JSON type" in v.detail


def test_expected_outputs_never_enter_the_child():
    code = "import os, json\ndef add(a, b):\n    return sorted(os.listdir('.')) + [open('/proc/self/cmdline').read()]"
    v = verdict_for(code, tests={**ADD, "outputs": [12345, 67890, 424242]})
    assert v.status == "failed"
    assert "12345" not in v.detail and "67890" not in v.detail


def test_no_code_block_is_an_error_not_a_crash():
    assert verdict_for(None).status == "error"


def test_sorted_comparison_and_float_tolerance():
    tests = {"kind": "call", "fn_name": "f", "inputs": [[1]], "outputs": [[[1, 2], [3]]], "compare": "sorted"}
    assert verdict_for("def f(x):\n    return [[3], [1, 2]]", tests).status == "passed"
    floats = {"kind": "call", "fn_name": "f", "inputs": [[1]], "outputs": [0.3]}
    assert verdict_for("def f(x):\n    return 0.1 + 0.2", floats).status == "passed"
    assert verdict_for("def f(x):\n    return True", {**floats, "outputs": [1]}).status == "failed"


def test_stdio_and_assert_kinds():
    stdio = {"kind": "stdio", "inputs": ["3 4\n"], "outputs": ["7\n"]}
    assert verdict_for("a, b = map(int, input().split())\nprint(a + b)", stdio).status == "passed"
    asserts = {"kind": "assert", "asserts": ["assert add(1, 2) == 3", "assert add(2, 2) == 5"]}
    v = verdict_for("def add(a, b):\n    return a + b", asserts)
    assert (v.status, v.passed, v.total) == ("failed", 1, 2)


def test_malformed_tests_are_an_infra_error_naming_the_problem():
    v = verdict_for("x = 1", {"kind": "call", "fn_name": "f", "inputs": [[1], [2]], "outputs": [1]})
    assert v.status == "infra_error" and "tests.inputs has 2 items, tests.outputs has 1" in v.detail


def test_identical_pairs_run_once_and_keep_their_ids():
    jobs = [Job("p", f"s{i}", "def add(a, b):\n    return a + b\n", ADD) for i in range(4)]
    verdicts = run_batch(jobs, FAST)
    assert [v.solution_id for v in verdicts] == ["s0", "s1", "s2", "s3"]
    assert all(v.status == "passed" for v in verdicts)


def test_humaneval_canonical_solutions_pass_and_stubs_fail():
    problems = load_humaneval().problems
    good = run_batch([Job(p["id"], "ref", p["reference"], p["tests"]) for p in problems], FAST)
    assert [v.problem_id for v in good if v.status != "passed"] == []
    stubs = run_batch(
        [Job(p["id"], "stub", p["prompt"] + "    return None\n", p["tests"]) for p in problems[:30]], FAST
    )
    assert all(v.status in ("failed", "error") for v in stubs)
    assert sum(v.status == "failed" for v in stubs) > 20  # assertion failures are wrong answers


def test_check_tests_are_recorded_into_call_tests_from_the_reference():
    problems = load_humaneval().problems[:40]
    conversions = convert_tests([(p["tests"], p["reference"]) for p in problems], FAST)
    assert all(c.converted for c in conversions), [c.reason for c in conversions if not c.converted]
    first = conversions[0].tests
    assert first["kind"] == "call" and first["fn_name"] == "has_close_elements" and first["recorded_from"] == "check"
    assert len(first["inputs"]) == len(first["outputs"]) == 7
    assert "assert" not in str(first["inputs"])  # only inputs travel; the check code does not
    good = run_batch([Job(p["id"], "ref", p["reference"], c.tests) for p, c in zip(problems, conversions)], FAST)
    assert [v.status for v in good] == ["passed"] * len(problems)
    assert all(v.total == len(c.tests["inputs"]) for v, c in zip(good, conversions))


def test_tests_that_draw_random_inputs_record_the_same_inputs_every_time():
    import sandbox.reference

    tests = {
        "kind": "check",
        "entry_point": "double",
        "test_code": (
            "import random\n\ndef check(candidate):\n    for _ in range(5):\n        x = random.randint(0, 10**9)\n"
            "        assert candidate(x) == 2 * x\n"
        ),
    }
    recorded = []
    for _ in range(2):
        sandbox.reference._cache.clear()  # a new process would start without the conversion cache
        [conversion] = convert_tests([(tests, "def double(x):\n    return 2 * x")], FAST)
        recorded.append(conversion.tests["inputs"])
    assert recorded[0] == recorded[1] and len({args[0] for args in recorded[0]}) == 5


def test_recorded_tests_keep_tuples_and_reject_lists_in_their_place():
    tests = {"kind": "assert", "asserts": ["assert pair(1) == (1, 2)", "assert pair(5) == (5, 6)"]}
    [conversion] = convert_tests([(tests, "def pair(x):\n    return (x, x + 1)")], FAST)
    assert conversion.converted and conversion.tests["fn_name"] == "pair"
    assert run_job(Job("p", "tuple", "def pair(x):\n    return x, x + 1", conversion.tests), FAST).status == "passed"
    assert run_job(Job("p", "list", "def pair(x):\n    return [x, x + 1]", conversion.tests), FAST).status == "failed"


def test_recording_is_refused_with_a_reason():
    failing = {"kind": "assert", "asserts": ["assert f(1) == 3"]}
    no_call = {"kind": "check", "entry_point": "f", "test_code": "def check(candidate):\n    pass\n"}
    sets = {"kind": "assert", "asserts": ["assert f(1) == {1}"]}
    reasons = [
        c.reason
        for c in convert_tests(
            [
                (failing, "def f(x):\n    return 2"),
                (no_call, "def f(x):\n    return 1"),
                (sets, "def f(x):\n    return {x}"),
                (failing, None),
            ],
            FAST,
        )
    ]
    assert "did not pass its own tests: AssertionError" in reasons[0]
    assert reasons[1] == "the tests never call the function"
    assert "not strict JSON" in reasons[2]
    assert reasons[3] == "no reference solution to record"


def test_function_under_test_is_read_from_the_asserts():
    assert function_under_test({"asserts": ["assert max_sum([1, 2]) == 3", "assert not max_sum([])"]}) == "max_sum"
    assert function_under_test({"asserts": ["assert set(similar((1,), (1,))) == {1}"]}) == "similar"
    assert function_under_test({"asserts": ["assert f(1) == 1", "assert g(1) == 1"]}) is None


def test_workers_are_recycled_after_n_jobs():
    pool = WorkerPool(SandboxConfig(workers=1, recycle_after=3, timeout_s=2))
    try:
        jobs = [Job("p", f"s{i}", f"def add(a, b):\n    return a + b  # {i}", ADD) for i in range(10)]
        assert {v.status for v in run_batch(jobs, pool.cfg, pool=pool)} == {"passed"}
        assert pool.started_workers == 4  # 3 + 3 + 3 + 1
    finally:
        pool.close()


def test_a_killed_worker_is_replaced_and_the_job_retried():
    pool = WorkerPool(SandboxConfig(workers=1, timeout_s=5))
    try:
        run_batch([Job("p", "warm", "def add(a, b):\n    return a + b", ADD)], pool.cfg, pool=pool)
        first = pool.worker_pids()[0]
        slow = "import time\ndef add(a, b):\n    time.sleep(0.3)\n    return a + b"
        killer = threading.Timer(0.3, os.killpg, (first, signal.SIGKILL))
        killer.start()
        verdict = run_batch([Job("p", "slow", slow, ADD)], pool.cfg, pool=pool)[0]
        killer.join()
        assert verdict.status == "passed" and pool.started_workers == 2 and pool.worker_pids()[0] != first
    finally:
        pool.close()


def test_a_job_whose_worker_keeps_dying_is_an_infra_error_not_a_failure():
    pool = WorkerPool(SandboxConfig(workers=1, timeout_s=5, infra_retries=1))
    stop = threading.Event()

    def keep_killing():
        while not stop.is_set():
            for pid in pool.worker_pids():
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.2)

    killer = threading.Thread(target=keep_killing)
    killer.start()
    try:
        slow = "import time\ndef add(a, b):\n    time.sleep(2)\n    return a + b"
        verdict = run_batch([Job("p", "slow", slow, ADD)], pool.cfg, pool=pool)[0]
    finally:
        stop.set()
        killer.join()
        pool.close()
    assert verdict.status == "infra_error" and "failed 2 times" in verdict.detail


def test_pools_are_shared_per_configuration():
    cfg = SandboxConfig(workers=1, timeout_s=3)
    assert pool_for(cfg) is pool_for(SandboxConfig(workers=1, timeout_s=3))
    assert pool_for(cfg) is not pool_for(SandboxConfig(workers=1, timeout_s=4))
