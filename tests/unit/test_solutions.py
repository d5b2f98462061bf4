"""Rejection sampling for problems without a reference: pass rates, the kept solution, infra errors,
and sampling through the annotators (the openai one against a real local server)."""

import pytest
from conftest import FIXTURES

from sandbox.config import SandboxConfig
from tasks.annotator_server import AnnotatorServer
from tasks.annotators import AnnotatorConfig, OpenAIAnnotator
from tasks.problems.catalog import load_source
from tasks.problems.solutions import SolutionsConfig, attach_solutions, rejection_sample, sampling_targets, shard_of

SANDBOX = SandboxConfig(workers=2, timeout_s=5)

ADD_RIGHT = "```python\na, b = map(int, input().split())\nprint(a + b)\n```"
ADD_WRONG = "```python\na, b = map(int, input().split())\nprint(a - b)\n```"
ADD_THINKING = (
    "<think>read, add</think>\n```python\na, b = map(int, input().split())\n"
    "print(<thinkanywhere>the sum, not the difference</thinkanywhere>a + b)\n```"
)
DIGITS_WRONG = "```python\nclass Solution:\n    def addDigits(self, num: int) -> int:\n        return num % 10\n```"
NO_CODE = "I am not sure how to do this."


@pytest.fixture(scope="module")
def skywork():
    problems = load_source(f"skywork:{FIXTURES}/skywork.parquet").problems[:2]
    assert [p["reference"] for p in problems] == [None, None] and problems[1]["tests"]["kind"] == "call"
    return problems


def scripted(replies_by_prompt):
    """A sampler that answers from a table (what a policy might have written) keyed by the problem
    statement the user message carries, k per conversation."""

    def sampler(conversations, k):
        return [
            next(replies for prompt, replies in replies_by_prompt.items() if prompt in c[-1]["content"])[:k]
            for c in conversations
        ]

    return sampler


def test_pass_rates_and_the_first_passing_sample_is_kept(skywork):
    add, digits = skywork
    cfg = SolutionsConfig(samples=3)
    table = {
        add["prompt"]: [ADD_WRONG, ADD_THINKING, ADD_RIGHT],
        digits["prompt"]: [DIGITS_WRONG, NO_CODE, DIGITS_WRONG],
    }
    results = rejection_sample(skywork, scripted(table), cfg, SANDBOX, "")
    assert [r["problem_id"] for r in results] == [add["id"], digits["id"]]
    assert [s["status"] for s in results[0]["samples"]] == ["failed", "passed", "passed"]
    assert results[0]["pass_rate"] == pytest.approx(2 / 3)
    assert results[0]["solution"] == "a, b = map(int, input().split())\nprint(a + b)\n"  # the thoughts stripped
    assert [s["status"] for s in results[1]["samples"]] == ["failed", "error", "failed"]
    assert results[1]["pass_rate"] == 0 and results[1]["solution"] is None

    updated, metrics = attach_solutions(skywork, results)
    assert updated[0]["reference"] == results[0]["solution"] and updated[0]["reference_origin"] == "rejection_sampled"
    assert updated[1]["reference"] is None and "reference_origin" not in updated[1]
    assert [p["meta"]["sampled_pass_rate"] for p in updated] == [pytest.approx(2 / 3), 0]
    assert metrics == {
        "problems": 2,
        "sampled_problems": 2,
        "samples": 6,
        "solved": 1,
        "pass_rate_mean": pytest.approx(1 / 3),
        "with_reference": 1,
        "with_policy_solution": 1,
    }
    assert (
        updated[0]["meta"]["policy_solution"] == results[0]["solution"] and "policy_solution" not in updated[1]["meta"]
    )


def test_a_given_reference_is_never_replaced(skywork):
    given = [{**skywork[0], "reference": "print(sum(map(int, input().split())))\n"}]
    results = rejection_sample(
        given, scripted({given[0]["prompt"]: [ADD_RIGHT]}), SolutionsConfig(samples=1, problems="all"), SANDBOX, ""
    )
    updated, metrics = attach_solutions(given, results)
    assert updated[0]["reference"] == given[0]["reference"] and metrics["solved"] == 0
    assert updated[0]["meta"]["sampled_pass_rate"] == 1
    assert (
        updated[0]["meta"]["policy_solution"] == "a, b = map(int, input().split())\nprint(a + b)\n"
    )  # the cold start's target


def test_a_sandbox_infra_error_stops_the_stage_naming_the_problem(skywork):
    broken = [{**skywork[0], "tests": {"kind": "stdio", "inputs": ["1\n"]}}]  # no outputs: the sandbox cannot judge
    with pytest.raises(RuntimeError, match=rf"{broken[0]['id']}: the sandbox could not run sample-0"):
        rejection_sample(broken, scripted({broken[0]["prompt"]: [ADD_RIGHT]}), SolutionsConfig(samples=1), SANDBOX, "")


def test_a_sampler_that_loses_replies_is_an_error(skywork):
    short = {p["prompt"]: [ADD_RIGHT] for p in skywork}
    with pytest.raises(RuntimeError, match=r"the sampler gave \[1, 1\] replies for 2 problems × 2"):
        rejection_sample(skywork, scripted(short), SolutionsConfig(samples=2), SANDBOX, "")


def test_targets_and_shards_follow_the_config():
    problems = [{"id": str(i), "reference": "x" if i % 2 else None} for i in range(7)]
    assert [p["id"] for p in sampling_targets(problems, SolutionsConfig())] == ["0", "2", "4", "6"]
    assert len(sampling_targets(problems, SolutionsConfig(problems="all"))) == 7
    assert sampling_targets(problems, SolutionsConfig(problems="none")) == []
    cfg = SolutionsConfig(shard_size=3)
    assert [[p["id"] for p in shard_of(problems, cfg, s)] for s in range(3)] == [["0", "2", "4"], ["6"], []]


def test_openai_annotator_samples_k_seeded_replies_each_cached_on_its_own(tiny_model_dir, tmp_path):
    conversations = [[{"role": "user", "content": f"Count to {i}."}] for i in range(3)]
    cfg = AnnotatorConfig(kind="openai", model="tiny", concurrency=4, backoff_s=0.01, timeout_s=10.0)
    with AnnotatorServer(tiny_model_dir, "tiny") as server:
        annotator = OpenAIAnnotator(cfg.model_copy(update={"base_url": server.url}), tmp_path / "cache")
        first = annotator.sample(conversations, 4, max_new_tokens=8, temperature=1.0, seed=7)
        again = OpenAIAnnotator(cfg.model_copy(update={"base_url": server.url}), tmp_path / "cache")
        second = again.sample(conversations, 4, max_new_tokens=8, temperature=1.0, seed=7)
        served = server.stats.as_dict()["served"]
    assert [len(r) for r in first] == [4, 4, 4] and second == first
    assert served == 12 and again.calls.cached == 12 and again.calls.requested == 0  # the re-run cost nothing
    assert all(len(set(replies)) > 1 for replies in first)  # seeds differ, so samples differ
