import pytest

from tasks.thinking import (
    clean_thought,
    extract_code,
    format_problems,
    has_inline_thought_in_statement,
    has_upfront_think,
    insert_inline_thoughts,
    parse_response,
    render_interleaved,
    render_response,
    strip_inline_thoughts,
    strip_thoughts,
)

GOOD = (
    "<think>\nsum the positives\n</think>\n"
    "```python\ndef f(xs):\n    return sum(<thinkanywhere>only x > 0 counts</thinkanywhere>x for x in xs if x > 0)\n```"
)


def test_extract_code_strips_inline_blocks_and_takes_last_block_after_think():
    text = "<think>```python\nbad()\n```</think>\n```python\nx = 1\n```\ntext\n```python\ny = <thinkanywhere>a\nmultiline</thinkanywhere>2\n```"
    assert extract_code(text) == "y = 2\n"


def test_extract_code_accepts_unclosed_final_block_and_returns_none_without_block():
    assert extract_code("```python\nx = 1\n") == "x = 1\n"
    assert extract_code("no code here") is None
    assert extract_code("```\nplain fence\n```") is None


def test_parse_response_finds_upfront_and_inline_thoughts():
    parsed = parse_response(GOOD)
    assert parsed.upfront_thought.strip() == "sum the positives"
    assert parsed.code == "def f(xs):\n    return sum(x for x in xs if x > 0)\n"
    assert len(parsed.inline_thoughts) == 1
    thought = parsed.inline_thoughts[0]
    assert thought.text == "only x > 0 counts" and thought.line == 1 and thought.inside_statement
    assert thought.code_before == "return sum("
    assert parsed.problems == []


@pytest.mark.parametrize(
    "text, problem",
    [
        ("<think>a\n```python\nx=1\n```", "unbalanced <think>"),
        ("hi <think>a</think>\n```python\nx=1\n```", "does not open the response"),
        ("```python\nx = <thinkanywhere>a\n```", "left open"),
        ("```python\nx = a</thinkanywhere>1\n```", "without an opening tag"),
        ("```python\nx = <thinkanywhere>a<thinkanywhere>b</thinkanywhere></thinkanywhere>1\n```", "nested"),
        ("<thinkanywhere>loose</thinkanywhere>\n```python\nx = 1\n```", "outside the code block"),
        ("<think>a</think><think>b</think>```python\nx=1\n```", "at most one upfront block"),
    ],
)
def test_malformed_tags_are_reported(text, problem):
    assert any(problem in p for p in format_problems(text)), format_problems(text)
    assert not has_inline_thought_in_statement(text)


def test_inline_thought_on_its_own_line_or_in_comment_is_not_inside_a_statement():
    own_line = "```python\ndef f():\n    <thinkanywhere>plan</thinkanywhere>\n    return 1\n```"
    in_comment = "```python\nx = 1  # <thinkanywhere>plan</thinkanywhere>\n```"
    assert not has_inline_thought_in_statement(own_line)
    assert not has_inline_thought_in_statement(in_comment)


def test_inline_thought_that_breaks_the_code_earns_nothing():
    broken = "```python\nx = (<thinkanywhere>t</thinkanywhere>1\n```"
    assert not has_inline_thought_in_statement(broken)
    assert has_inline_thought_in_statement(GOOD)


def test_upfront_think_must_open_and_be_non_empty():
    assert has_upfront_think(GOOD)
    assert not has_upfront_think(
        "  \n<think>x</think>"
    )  # the reference's ^<think>: as the reward (test_format_reward.py)
    assert not has_upfront_think("<think>   </think>```python\nx=1\n```")
    assert not has_upfront_think("text <think>x</think>")
    assert not has_upfront_think("<think>never closed")


def test_insert_then_strip_gives_back_the_code():
    code = "total = a + b\nprint(total)\n"
    annotated = insert_inline_thoughts(code, {8: "add both", 13: "b may be 0"})
    assert (
        annotated
        == "total = <thinkanywhere>add both</thinkanywhere>a + b<thinkanywhere>b may be 0</thinkanywhere>\nprint(total)\n"
    )
    assert strip_inline_thoughts(annotated) == code
    with pytest.raises(ValueError):
        insert_inline_thoughts(code, {999: "x"})


def test_clean_thought_removes_tags_fences_and_newlines():
    assert clean_thought("a </thinkanywhere> ```b```\n\nc <think>") == "a '''b''' c"
    assert len(clean_thought("word " * 100, max_chars=30)) <= 30
    assert clean_thought("\n\n  ") == ""


def test_render_response_round_trips_through_extract_code():
    response = render_response("x = <thinkanywhere>t</thinkanywhere>1", upfront="plan")
    assert has_upfront_think(response) and has_inline_thought_in_statement(response)
    assert extract_code(response) == "x = 1\n"


def test_midtraining_interleave_and_strip_give_back_the_chunk():
    segments = ["The cat ", "sat on ", "the mat."]
    text = render_interleaved(segments, ["who?", "where?"])
    assert text == "The cat <think>who?</think>sat on <think>where?</think>the mat."
    assert strip_thoughts(text) == "".join(segments)
    with pytest.raises(ValueError):
        render_interleaved(segments, ["only one"])
