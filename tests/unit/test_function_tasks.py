"""The generated task family: deterministic, typed, disjoint train and eval sides, tests that the
reference passes in the real sandbox and that a wrong solution fails, hints matched to lines."""

from collections import Counter

import pytest

from tasks.problems.catalog import load_source
from tasks.problems.function_tasks import (
    BY_NAME,
    OPERATIONS,
    Spec,
    apply,
    composition_seen,
    generate_tasks,
    hint_for_line,
    parse_options,
    plan_of,
    reference_code,
    spec_side,
)
from tasks.records import ProblemFormatError, validate_problem


def spec_key(problem):
    return tuple(zip(problem["meta"]["ops"], problem["meta"]["constants"]))


def test_same_options_same_tasks_other_seed_other_inputs():
    first, again = generate_tasks("train", 0, 60), generate_tasks("train", 0, 60)
    assert first == again
    other = generate_tasks("train", 1, 60)
    assert [p["id"] for p in other] != [p["id"] for p in first]
    assert len({p["id"] for p in first}) == 60 and len({spec_key(p) for p in first}) == 60


def test_train_and_eval_sides_share_no_spec_and_eval_holds_unseen_compositions():
    train, held_out = generate_tasks("train", 0, 400, (1, 2)), generate_tasks("eval", 1, 200, (1, 2))
    assert not {spec_key(p) for p in train} & {spec_key(p) for p in held_out}
    assert all(p["meta"]["composition_seen"] for p in train)
    unseen = [p for p in held_out if not p["meta"]["composition_seen"]]
    assert 20 <= len(unseen) <= 180
    assert not {p["meta"]["composition"] for p in unseen} & {p["meta"]["composition"] for p in train}
    assert Counter(p["difficulty"] for p in held_out).keys() == {"1 ops", "2 ops"}


def test_every_spec_falls_on_one_side_for_good():
    spec = Spec(("keep_even", "total"), (None, None))
    assert spec_side(spec) == spec_side(Spec(("keep_even", "total"), (None, None)))
    assert composition_seen("keep_even>total") in (True, False)


def test_records_are_valid_problems_with_call_tests_from_the_reference():
    for problem in generate_tasks("eval", 3, 40, (1, 3)):
        validate_problem(problem, problem["id"])
        namespace = {}
        exec(problem["reference"], namespace)
        function = namespace[problem["tests"]["fn_name"]]
        assert [function(*args) for args in problem["tests"]["inputs"]] == problem["tests"]["outputs"]
        assert f"def {problem['tests']['fn_name']}(" in problem["prompt"] and ">>>" in problem["prompt"]
        assert len(problem["meta"]["hints"]) == len(problem["meta"]["ops"]) == int(problem["difficulty"][0])


def test_every_operation_runs_on_inputs_of_its_type():
    samples = {
        "list[int]": [3, -2, 8, 8],
        "str": "level noon Ada",
        "list[str]": ["sky", "a", "sky"],
        "int": -7,
        "dict[str, int]": {"a": 2, "sky": 3},
    }
    for op in OPERATIONS:
        constant = op.constants[0] if op.constants else None
        assert apply(Spec((op.name,), (constant,)), samples[op.takes]) is not None, op.name
        code = reference_code(Spec((op.name,), (constant,)), '    """doc"""')
        namespace = {}
        exec(code, namespace)
        assert namespace[op.name](samples[op.takes]) == apply(Spec((op.name,), (constant,)), samples[op.takes]), op.name


def test_source_options_and_their_errors():
    assert parse_options("split=eval,seed=2,count=10,ops=2") == {"split": "eval", "seed": 2, "count": 10, "ops": (2, 2)}
    loaded = load_source("functions:split=eval,count=5,ops=1-2")
    assert len(loaded.problems) == 5 and loaded.reconciles() and loaded.problems[0]["source"] == "functions"
    for bad in ("split=test", "ops=0-2", "count=x", "colour=red"):
        with pytest.raises(ProblemFormatError, match="functions source"):
            parse_options(bad)
    with pytest.raises(ProblemFormatError, match="only .* distinct"):
        generate_tasks("train", 0, 10_000, (1, 1))


def test_a_hint_goes_to_the_line_doing_its_operation():
    meta = {"ops": ["keep_even", "total"], "hints": [BY_NAME["keep_even"].hint, BY_NAME["total"].hint]}
    assert hint_for_line(meta, "    evens = [n for n in nums if n % 2 == 0]") == BY_NAME["keep_even"].hint
    assert hint_for_line(meta, "    return sum(evens)") == BY_NAME["total"].hint
    assert hint_for_line(meta, "    x = 1") is None
    prompt = generate_tasks("train", 0, 1, (2, 2))[0]["prompt"]
    assert plan_of({"ops": ["a", "b"]}, prompt).startswith("Steps: ") and ", then " in plan_of({"ops": ["a"]}, prompt)
    assert plan_of({}, prompt) is None
