import pytest

from tasks.rewards import (
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
