import pytest

from tasks.training.rewards import (
    UnscorableVerdict,
    correct_term,
    inline_think_term,
    think_anywhere_reward,
    upfront_think_term,
)

PLAIN = "```python\ndef f(x):\n    return x + 1\n```"
UPFRONT = "<think>\nadd one\n</think>\n" + PLAIN
INLINE = "```python\ndef f(x):\n    return x + <thinkanywhere>one more</thinkanywhere>1\n```"
BOTH = "<think>\nadd one\n</think>\n" + INLINE


def verdict(status):
    return {"problem_id": "p", "solution_id": "s", "status": status, "passed": 0, "total": 1, "detail": ""}


def test_each_term_alone():
    assert correct_term([PLAIN, PLAIN], verdicts=[verdict("passed"), verdict("failed")]) == [1.0, 0.0]
    assert upfront_think_term([PLAIN, UPFRONT, INLINE, BOTH]) == [0.0, 1.0, 0.0, 1.0]
    assert inline_think_term([PLAIN, UPFRONT, INLINE, BOTH]) == [0.0, 0.0, 1.0, 1.0]


def test_weighted_sum_matches_the_paper():
    completions = [PLAIN, UPFRONT, INLINE, BOTH, BOTH]
    verdicts = [verdict("passed"), verdict("failed"), verdict("failed"), verdict("passed"), verdict("timeout")]
    rewards = think_anywhere_reward(completions, verdicts)
    assert rewards == pytest.approx([0.9, 0.02, 0.08, 1.0, 0.1])


def test_conversational_completions_are_read():
    assert upfront_think_term([[{"role": "assistant", "content": UPFRONT}]]) == [1.0]


def test_infra_error_is_never_scored():
    with pytest.raises(UnscorableVerdict):
        think_anywhere_reward([PLAIN], [verdict("infra_error")])


def test_verdict_count_must_match():
    with pytest.raises(ValueError):
        correct_term([PLAIN, PLAIN], verdicts=[verdict("passed")])


OWN_LINE = "```python\ndef f(x):\n    <thinkanywhere>one more</thinkanywhere>\n    return x + 1\n```"
AT_LINE_END = "```python\ndef f(x):\n    return x + 1  <thinkanywhere>done</thinkanywhere>\n```"
UNCLOSED = "```python\ndef f(x):\n    return x + <thinkanywhere>one more 1\n```"
EMPTY_UPFRONT = "<think>   </think>\n" + PLAIN


def test_format_terms_refuse_blocks_that_do_not_count():
    assert inline_think_term([OWN_LINE, UNCLOSED, AT_LINE_END]) == [
        0.0,
        0.0,
        0.0,
    ]  # own line; never closed; no code after
    assert upfront_think_term([EMPTY_UPFRONT, "Sure!\n" + UPFRONT]) == [0.0, 0.0]  # empty; not at the start


def test_the_registry_names_its_rewards_and_their_weights():
    from sandbox.config import SandboxConfig
    from tasks.training.rewards import REWARDS, reward_functions

    assert sorted(REWARDS) == ["math", "midtrain_judge", "think_anywhere"]
    terms = reward_functions("think_anywhere", {"weights": {"inline_think": 0.5}}, SandboxConfig())
    assert {name: weight for name, (_, weight) in terms.items()} == {
        "correct": 0.9,
        "upfront_think": 0.02,
        "inline_think": 0.5,
        "correct_varies": 0.0,
    }  # the registry's defaults under the recipe's weights; correct_varies logged, never rewarded
    with pytest.raises(ValueError, match="unknown reward 'bleu'"):
        reward_functions("bleu", {}, SandboxConfig())


def test_think_anywhere_correct_term_runs_the_sandbox():
    import json

    from sandbox.config import SandboxConfig
    from tasks.training.rewards import reward_functions

    problem = {"id": "p/1", "tests": {"kind": "call", "fn_name": "f", "inputs": [[1], [5]], "outputs": [2, 6]}}
    terms = reward_functions("think_anywhere", {}, SandboxConfig(workers=2))
    wrong = PLAIN.replace("x + 1", "x + 2")
    completions, problems = [BOTH, wrong, "no code"], [json.dumps(problem)] * 3
    assert terms["correct"][0](completions, problem_json=problems) == [1.0, 0.0, 0.0]
    assert terms["correct"][1] == 0.9


def test_tests_passed_term_is_the_share_of_cases_and_runs_the_sandbox_once_for_both_terms():
    import json

    from sandbox.config import SandboxConfig
    from tasks.training.rewards import reward_functions, tests_passed_term

    partial = {**verdict("failed"), "passed": 1, "total": 4}
    assert tests_passed_term(
        [PLAIN, PLAIN, PLAIN], verdicts=[verdict("passed") | {"passed": 1}, partial, verdict("error") | {"total": 0}]
    ) == [1.0, 0.25, 0.0]
    with pytest.raises(UnscorableVerdict):
        tests_passed_term([PLAIN], [verdict("infra_error")])
    assert "tests_passed" not in reward_functions(
        "think_anywhere", {}, SandboxConfig()
    )  # only where a recipe weights it
    problem = {
        "id": "p/1",
        "tests": {"kind": "call", "fn_name": "f", "inputs": [[1], [5], [0], [-1]], "outputs": [2, 6, 1, 0]},
    }
    terms = reward_functions(
        "think_anywhere", {"weights": {"correct": 0.5, "tests_passed": 0.5}}, SandboxConfig(workers=2)
    )
    half_right = PLAIN.replace("x + 1", "x + 1 if x > 0 else 7")  # right on 1 and 5 only
    completions, problems = [BOTH, half_right, "no code"], [json.dumps(problem)] * 3
    assert terms["tests_passed"][0](completions, problem_json=problems) == [1.0, 0.5, 0.0]
    assert terms["correct"][0](completions, problem_json=problems) == [1.0, 0.0, 0.0]
    # 0.5 correct + 0.5 tests_passed, and the format terms at their registered defaults (0.02, 0.08)
    assert {name: weight for name, (_, weight) in terms.items() if name != "correct_varies"} == {
        "correct": 0.5,
        "tests_passed": 0.5,
        "upfront_think": 0.02,
        "inline_think": 0.08,
    }


def test_midtrain_judge_needs_a_thought_and_a_close_guess():
    from tasks.midtraining.next_segment import midtrain_judge_reward, split_thought, token_f1

    suffix = "the cache is flushed before the file is closed"
    assert split_thought("<think>what comes next</think> the cache") == ("what comes next", " the cache")
    assert token_f1("the cache is flushed", suffix) == pytest.approx(2 * 1 * (4 / 9) / (1 + 4 / 9))
    completions = [
        "<think>it closes</think>the cache is flushed before closing",
        "the cache is flushed before the file is closed",
        "<think>x</think>completely unrelated words here",
    ]
    assert midtrain_judge_reward(completions, prefix=["p"] * 3, suffix=[suffix] * 3, threshold=0.5) == [1.0, 0.0, 0.0]


def test_the_graded_judge_and_a_prefilled_thought():
    from sandbox.config import SandboxConfig
    from tasks.midtraining.next_segment import judge_guesses, midtrain_judge_reward, token_f1
    from tasks.training.rewards import reward_functions

    suffix = "the cache is flushed before the file is closed"
    guesses = ["the cache is flushed", "unrelated", suffix]
    assert judge_guesses(guesses, ["p"] * 3, [suffix] * 3, judge="f1") == [token_f1(g, suffix) for g in guesses]
    assert 0 < judge_guesses(guesses, ["p"] * 3, [suffix] * 3, judge="f1")[0] < 1
    assert midtrain_judge_reward(["no thought " + suffix], ["p"], [suffix], judge="f1") == [0.0]
    with pytest.raises(ValueError, match="unknown judge 'bleu'"):
        judge_guesses(guesses, ["p"] * 3, [suffix] * 3, judge="bleu")
    # the prompt ended with <think>: the completion starts inside the thought
    written = ["it flushes</think>the cache is flushed before the file is closed", "still thinking, never closed"]
    for prefilled, expected in ((True, [1.0, 0.0]), (False, [0.0, 0.0])):
        terms = reward_functions(
            "midtrain_judge", {"judge": "f1", "prefill_think": prefilled, "format_weight": 0.1}, SandboxConfig()
        )
        assert terms["judge"][0](written, prefix=["p"] * 2, suffix=[suffix] * 2) == expected
        assert terms["upfront_think"][0](written) == expected
        assert terms["thought_words"][0](written) == [2.0 * expected[0], 0.0]


def test_rl_mid_training_prompts_end_with_the_opening_tag_when_prefilled(tiny_model_dir):
    from transformers import AutoTokenizer

    from tasks.midtraining.next_segment import midtraining_rl_rows

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    examples = [{"prefix": "import os\n" * 50, "suffix": "print(1)\n"}, {"prefix": "x = 1\n", "suffix": "y = 2\n"}]
    rows, trimmed = midtraining_rl_rows(examples, tokenizer, 32, None, "<think>")
    assert trimmed == 1 and rows[1]["prompt"] == "x = 1\n<think>" and rows[0]["prompt"].endswith("import os\n<think>")
    assert [r["prefix"] for r in rows] == [e["prefix"] for e in examples]
    assert midtraining_rl_rows(examples, tokenizer, 32, 1)[0][0]["prompt"] == rows[0]["prompt"][: -len("<think>")]


def test_math_reward_checks_the_answer_with_math_verify():
    from tasks.training.rewards import math_reward

    completions = [
        "<think>half of one</think>The answer is \\boxed{0.5}",
        "so \\boxed{\\frac{1}{2}}",
        "I get \\boxed{2}",
    ]
    assert math_reward(completions, answer=["\\frac{1}{2}", "0.5", "3"]) == [1.0, 1.0, 0.0]
