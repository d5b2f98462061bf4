"""The reward's format terms, one test per rule of the reference's ``cal_format_reward``."""

import pytest

from tasks.thinking import FormatCredit, format_credit

THOUGHT = "<think>\nadd one to x\n</think>\n"


def reply(code: str, head: str = THOUGHT, fence: str = "```") -> str:
    return f"{head}```python\n{code}\n{fence}"


def test_a_reply_without_a_closed_python_block_earns_no_format_credit():
    unclosed = reply("y = x + <thinkanywhere>one more</thinkanywhere>1", fence="")
    assert format_credit(unclosed) == FormatCredit(upfront_think=False, inline_think=False)
    other_language = THOUGHT + "```js\nlet y = x + <thinkanywhere>one</thinkanywhere>1\n```"
    assert format_credit(other_language) == FormatCredit(False, False)


def test_the_upfront_thought_must_open_the_reply_at_its_first_character():
    assert format_credit(reply("y = x + 1")).upfront_think
    assert not format_credit(reply("y = x + 1", head="\n" + THOUGHT)).upfront_think
    assert not format_credit(reply("y = x + 1", head="Sure! " + THOUGHT)).upfront_think


def test_an_upfront_thought_of_spaces_earns_nothing():  # where we differ from the reference, on purpose
    assert not format_credit(reply("y = x + 1", head="<think> \n </think>\n")).upfront_think
    assert not format_credit(reply("y = x + 1", head="<think></think>\n")).upfront_think


def test_an_inline_block_needs_code_on_both_sides_on_its_line():
    assert format_credit(reply("y = x + <thinkanywhere>one more</thinkanywhere>1")).inline_think
    assert not format_credit(reply("y = x + 1 <thinkanywhere>done</thinkanywhere>")).inline_think  # at the end
    assert not format_credit(reply("    <thinkanywhere>add</thinkanywhere>y = x + 1")).inline_think  # at the start
    assert not format_credit(reply("<thinkanywhere>a line of its own</thinkanywhere>\ny = x + 1")).inline_think


def test_the_line_is_read_up_to_its_first_hash():
    assert not format_credit(reply("y = x  # add <thinkanywhere>one</thinkanywhere> more")).inline_think
    assert format_credit(reply("y = x + <thinkanywhere>one</thinkanywhere>1  # comment")).inline_think


def test_a_block_wrapping_a_comment_does_not_count():
    assert not format_credit(reply("y = x + <thinkanywhere># one more</thinkanywhere>1")).inline_think
    both = "y = x + <thinkanywhere># note</thinkanywhere>1 - <thinkanywhere>then one less</thinkanywhere>z"
    assert format_credit(reply(both)).inline_think


def test_a_block_across_lines_does_not_count():
    assert not format_credit(reply("y = x + <thinkanywhere>one\nmore</thinkanywhere>1")).inline_think


def test_only_the_first_closed_python_block_is_read():
    first_plain = reply("y = x + 1") + "\n```python\ny = x + <thinkanywhere>one</thinkanywhere>1\n```"
    assert not format_credit(first_plain).inline_think
    first_inline = reply("y = x + <thinkanywhere>one</thinkanywhere>1") + "\n```python\ny = 2\n```"
    assert format_credit(first_inline).inline_think


def test_inline_credit_does_not_need_the_upfront_thought_or_code_that_parses():
    no_upfront = reply("y = x + <thinkanywhere>one</thinkanywhere>1", head="")
    assert format_credit(no_upfront) == FormatCredit(upfront_think=False, inline_think=True)
    broken = reply("y = (x + <thinkanywhere>one</thinkanywhere>1")
    assert format_credit(broken).inline_think


@pytest.mark.parametrize("text", ["", "no code at all", "<think>x</think>"])
def test_replies_without_code_score_zero(text):
    assert format_credit(text) == FormatCredit(False, False)
