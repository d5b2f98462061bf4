"""Sandbox v0 verdicts: decided in the parent, from strictly typed results."""

import os
import time

import pytest

from sandbox import Job, SandboxConfig, Verdict, run_batch, run_job
from tasks.problems import load_humaneval

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


def test_infinite_loop_times_out_and_kills_its_process_group(tmp_path):
    marker = tmp_path / "child_alive"
    code = (
        "import os, time\n"
        "if os.fork() == 0:\n"
        f"    while True:\n        open({str(marker)!r}, 'w').write(str(time.time())); time.sleep(0.05)\n"
        "def add(a, b):\n    while True: pass\n"
    )
    v = verdict_for(code, cfg=SandboxConfig(timeout_s=1.0))
    assert v.status == "timeout" and "wall-clock limit" in v.detail
    time.sleep(0.3)
    before = marker.stat().st_mtime
    time.sleep(0.3)
    assert marker.stat().st_mtime == before, "the forked child kept running after the timeout"


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


def test_memory_bomb_is_reported_as_memory():
    v = verdict_for("x = bytearray(8 * 1024**3)\ndef add(a, b):\n    return a + b", cfg=SandboxConfig(timeout_s=3, memory_mb=512))
    assert v.status == "memory"


def test_environment_secrets_do_not_reach_the_child(monkeypatch):
    monkeypatch.setenv("THINKFLOW_TEST_SECRET", "hunter2")
    v = verdict_for("import os\ndef add(a, b):\n    return os.environ.get('THINKFLOW_TEST_SECRET', 0) or a + b")
    assert v.status == "passed"


def test_output_flood_is_capped():
    code = "import sys\ndef add(a, b):\n    sys.stderr.write('x' * 10_000_000)\n    return a + b"
    v = verdict_for(code, cfg=SandboxConfig(timeout_s=5, output_cap_bytes=100_000))
    assert v.status == "error" and "output limit" in v.detail


def test_workdir_is_private_and_removed():
    code = "import os\ndef add(a, b):\n    open('left.txt', 'w').write('x')\n    return [os.getcwd()]"
    v = verdict_for(code, tests={**ADD, "inputs": [[1, 2]], "outputs": [["/nowhere"]]})
    workdir = v.detail.split("wrong answer ")[1]
    assert "thinkflow-sbx-" in workdir
    assert not os.path.exists(workdir.strip('[]"'))


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
    good = run_batch([Job(p["id"], "ref", p["reference"], p["tests"]) for p in problems], SandboxConfig(workers=2))
    assert [v.problem_id for v in good if v.status != "passed"] == []
    stubs = run_batch([Job(p["id"], "stub", p["prompt"] + "    return None\n", p["tests"]) for p in problems[:30]], FAST)
    assert all(v.status in ("failed", "error") for v in stubs)
    assert sum(v.status == "failed" for v in stubs) > 20  # assertion failures are wrong answers
