"""The generated task family and recorded truth-only checks, judged by the real sandbox."""

from sandbox.config import SandboxConfig
from sandbox.pool import run_batch
from sandbox.reference import convert_tests
from sandbox.verdicts import Job
from tasks.problems.bundled import load_humaneval
from tasks.problems.function_tasks import generate_tasks

SANDBOX = SandboxConfig(workers=2, timeout_s=5)


def test_the_reference_passes_and_a_wrong_solution_fails_in_the_sandbox():
    problems = generate_tasks("train", 0, 24, (1, 2))
    wrong = [p["reference"].replace("\n    return ", "\n    return None and ", 1) for p in problems]
    jobs = [Job(p["id"], "reference", p["reference"], p["tests"]) for p in problems]
    jobs += [Job(p["id"], "wrong", code, p["tests"]) for p, code in zip(problems, wrong)]
    verdicts = run_batch(jobs, SANDBOX)
    assert [v.status for v in verdicts[:24]] == ["passed"] * 24
    assert all(v.status == "failed" for v in verdicts[24:])


def test_a_check_that_asserts_only_truth_accepts_any_truthy_value_as_humanevals_harness_does():
    problems = {p["id"]: p for p in load_humaneval().problems}
    brackets, sums = problems["humaneval/56"], problems["humaneval/53"]  # 53 asserts equality: stays exact
    converted = convert_tests([(brackets["tests"], brackets["reference"]), (sums["tests"], sums["reference"])], SANDBOX)
    assert converted[0].converted and converted[0].tests["compare"] == "truthy"
    assert converted[1].converted and "compare" not in converted[1].tests
    as_ints = brackets["reference"].replace("return depth == 0", "return int(depth == 0)")
    assert as_ints != brackets["reference"]
    always_text = "def correct_bracketing(brackets):\n    return 'yes'\n"
    verdicts = run_batch(
        [
            Job("humaneval/56", "ints", as_ints, converted[0].tests),
            Job("humaneval/56", "text", always_text, converted[0].tests),
        ],
        SANDBOX,
    )
    assert [v.status for v in verdicts] == ["passed", "failed"]
