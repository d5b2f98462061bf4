from collections import Counter

from tasks.coldstart.build import PendingSample, assemble_sample
from tasks.coldstart.thought_text import plan_from, prose_part, task_sentence
from tasks.thinking import clean_thought

HUMANEVAL_PROMPT = '''from typing import List


def has_close_elements(numbers: List[float], threshold: float) -> bool:
    """ Check if in given list of numbers, are any two numbers closer to each other than
    given threshold.
    >>> has_close_elements([1.0, 2.0, 3.0], 0.5)
    False
    """
'''


def test_prose_is_cut_at_the_first_code_marker_and_ends_at_a_whole_sentence():
    # plans the 135M annotator wrote for the demo's cold-start set (2026-12-02)
    lead_in = (
        "To solve this problem, you can use a list comprehension to filter the list. '''python def get_positive("
        "l: list): return"
    )
    assert prose_part(lead_in) == "To solve this problem, you can use a list comprehension to filter the list."
    assert prose_part("Here's a Python solution: '''python def prime_fib(n): if n <= 1: return n") == ""
    assert prose_part("def digitSum(s): return sum(c * 10 for c in s if c.isupper())") == ""
    cut_at_cap = "The task is to sort the list. Then the code must keep the order of the list of"
    assert prose_part(cut_at_cap) == "The task is to sort the list."
    assert prose_part("The next piece of code must get the length") == "The next piece of code must get the length"
    assert prose_part("check bounds") == "check bounds" and prose_part("ok") == ""
    assert prose_part(clean_thought("Return ```x == y``` here")) == ""  # one word before the code: nothing left


def test_task_sentence_takes_the_docstring_s_first_sentence_without_examples():
    assert task_sentence(HUMANEVAL_PROMPT) == (
        "Check if in given list of numbers, are any two numbers closer to each other than given threshold."
    )
    leetcode = (
        "Given an array of integers nums, return the indices of two numbers. You may assume one answer.\n\nExample 1:"
    )
    assert task_sentence(leetcode) == "Given an array of integers nums, return the indices of two numbers."
    assert task_sentence("") == ""


def test_a_plan_without_prose_is_the_task_s_first_sentence_and_is_counted():
    assert plan_from("Sort first, then scan neighbours once.", HUMANEVAL_PROMPT) == (
        "Sort first, then scan neighbours once.",
        False,
    )
    plan, from_task = plan_from("'''python def has_close_elements(numbers", HUMANEVAL_PROMPT)
    assert from_task and plan.startswith("The task: Check if in given list of numbers")
    code = "def f(xs):\n    total = sum(x for x in xs)\n    return total\n"
    sites = [code.index("sum"), code.index("total\n")]
    pending = PendingSample(
        {"id": "p/1", "prompt": HUMANEVAL_PROMPT},
        code,
        sites,
        plan="def f(xs): return sum(xs)",
        thoughts=["a generator is enough", "'''python return total"],
    )
    twice = PendingSample(
        {"id": "p/2", "prompt": HUMANEVAL_PROMPT},
        code,
        sites,
        plan="Add the values up in one pass.",
        thoughts=["A generator is enough.", "a generator is enough."],
    )
    repaired = Counter()
    record, reason = assemble_sample(pending, repaired=repaired)
    assert reason is None and record["plan"].startswith("The task: Check")
    assert record["thoughts"] == ["a generator is enough"] and record["offsets"] == [sites[0]]
    assert repaired == Counter(plan_from_task=1, thought_without_prose_dropped=1)
    assert "def f" not in record["response"].split("</think>")[0]
    record, reason = assemble_sample(twice, repaired=repaired)
    assert (
        reason is None
        and record["thoughts"] == ["A generator is enough."]
        and repaired["repeated_thought_dropped"] == 1
    )
