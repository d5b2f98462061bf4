from tasks.coldstart.build import PendingSample, assemble_sample
from tasks.coldstart.insertion_sites import choose_insertion_offsets, insertion_candidates, token_entropies
from tasks.models import load_for_inference

CODE = 'def f(xs):\n    """Doc string."""\n    total = sum(x for x in xs)  # note\n    return total\n'


def test_candidates_sit_inside_statements_never_in_strings_or_comments():
    offsets = insertion_candidates(CODE)
    assert offsets
    for offset in offsets:
        line_start = CODE.rfind("\n", 0, offset) + 1
        assert CODE[line_start:offset].strip(), "a candidate may not open a line"
        line = CODE[line_start : CODE.find("\n", offset)]
        assert "#" not in CODE[line_start:offset]
        assert '"""' not in line
    assert CODE.index("sum") in offsets and CODE.index("total\n") in offsets
    assert insertion_candidates("def broken(:\n") == []


def test_entropy_ranks_positions_with_the_tiny_model(tiny_model_dir):
    tokenizer, model = load_for_inference(tiny_model_dir)
    spans = token_entropies(model, tokenizer, "<|im_start|>assistant\n```python\n", CODE)
    assert spans and all(0 <= s < e <= len(CODE) and h >= 0 for s, e, h in spans)
    chosen = choose_insertion_offsets(CODE, spans, k=2)
    assert len(chosen) == 2 and set(chosen) <= set(insertion_candidates(CODE))


def test_assembly_accepts_good_samples_and_names_rejections():
    problem = {"id": "p/1"}
    good = PendingSample(
        problem, CODE, [CODE.index("sum")], plan="Add them up in one pass.", thoughts=["a generator is enough"]
    )
    record, reason = assemble_sample(good)
    assert reason is None and record["annotated_code"].count("<thinkanywhere>") == 1
    plan = "Add them up in one pass."
    assert (
        assemble_sample(PendingSample(problem, CODE, [CODE.index("sum")], plan=plan, thoughts=["\n\n"]))[1]
        == "empty_thought"
    )
    assert (
        assemble_sample(PendingSample(problem, CODE, [CODE.index("sum")], plan=" ", thoughts=["sum first"]))[1]
        == "empty_plan"
    )
    own_line = PendingSample(problem, CODE, [CODE.index("    return")], plan=plan, thoughts=["return it"])
    assert assemble_sample(own_line)[1] == "not_inside_statement"


REFERENCE = "def total(xs):\n    s = 0\n    for x in xs:\n        s += x * 2\n    return s\n"
PROBLEM = {
    "id": "p/1",
    "prompt": "Double and sum.",
    "reference": REFERENCE,
    "tests": {"kind": "call", "fn_name": "total", "inputs": [[[1, 2]], [[]]], "outputs": [6, 0]},
}


def test_rewrite_is_checked_token_for_token_and_by_its_tests():
    from sandbox.config import SandboxConfig
    from sandbox.pool import run_batch
    from sandbox.verdicts import Job
    from tasks.coldstart.build import assemble_rewrite

    good = REFERENCE.replace("s += x * 2", "s += <thinkanywhere>each value counts twice</thinkanywhere>x * 2")
    record, reason = assemble_rewrite(PROBLEM, "Sum twice each.", f"```python\n{good}```")
    assert reason is None and record["identical"] and record["thoughts"] == ["each value counts twice"]
    reworded = good.replace("return s", "return (s)")  # not the same tokens, still correct
    record, _ = assemble_rewrite(PROBLEM, "plan", f"```python\n{reworded}```")
    assert not record["identical"]
    broken = good.replace("x * 2", "x * 3")
    wrong, _ = assemble_rewrite(PROBLEM, "plan", f"```python\n{broken}```")
    verdicts = run_batch(
        [Job("p/1", "a", record["code"], PROBLEM["tests"]), Job("p/1", "b", wrong["code"], PROBLEM["tests"])],
        SandboxConfig(),
    )
    assert [v.status for v in verdicts] == ["passed", "failed"]  # the caller keeps only the first
    own_line = REFERENCE.replace("    return s", "    <thinkanywhere>done</thinkanywhere>\n    return s")
    assert assemble_rewrite(PROBLEM, "plan", own_line) == (None, "not_inside_statement")
    assert assemble_rewrite(PROBLEM, "plan", REFERENCE) == (None, "no_inline_thought")
    assert assemble_rewrite({**PROBLEM, "prompt": ""}, "", good) == (
        None,
        "empty_plan",
    )  # no plan and no task to take one from


def test_rewrite_strategy_accounts_for_every_solution(tiny_model_dir):
    from sandbox.config import SandboxConfig
    from tasks.annotators import make_annotator
    from tasks.coldstart.build import build_coldstart_examples
    from tasks.recipe import AnnotatorConfig, ColdStartConfig

    cfg = ColdStartConfig(strategy="rewrite", plan_max_new_tokens=8, rewrite_max_new_tokens=24, thoughts_per_solution=1)
    annotator_for = lambda policy: make_annotator(AnnotatorConfig(), tiny_model_dir, None, loaded=policy)  # noqa: E731
    records, report = build_coldstart_examples(
        [PROBLEM, {**PROBLEM, "id": "p/2"}], tiny_model_dir, annotator_for, cfg, SandboxConfig(), "sys"
    )
    assert report.solutions_in == 2 and report.accepted == len(records)
    assert (
        report.accepted + sum(report.rejected.values()) == 2
    )  # the untrained model's rewrites are rejected, by reason


def test_targets_drop_the_docstrings_a_humaneval_reference_repeats():
    from tasks.coldstart.insertion_sites import without_docstrings

    code = 'from typing import List\n\n\ndef f(xs: List[int]) -> int:\n    """Sum.\n    >>> f([1])\n    1\n    """\n    return sum(xs)\n'
    assert without_docstrings(code) == "from typing import List\n\n\ndef f(xs: List[int]) -> int:\n    return sum(xs)\n"
    only_docstring = 'def g():\n    """nothing else"""\n'
    assert without_docstrings(only_docstring) == only_docstring  # the body would be empty
    assert without_docstrings("def h(:\n") == "def h(:\n"  # does not parse: unchanged
    kept_string = 'def k():\n    x = 1\n    "not a docstring"\n    return x\n'
    assert without_docstrings(kept_string) == kept_string


def test_policy_targets_come_first_and_carry_the_policys_own_code():
    from tasks.coldstart.build import coldstart_candidates
    from tasks.recipe import ColdStartConfig

    problems = [
        {"id": "given", "reference": "def f(): return 1\n", "meta": {}},
        {"id": "own", "reference": "def g(): return 2\n", "meta": {"policy_solution": "def g():\n    return 2\n"}},
        {"id": "none", "reference": None, "meta": {}},
    ]
    chosen = coldstart_candidates(problems, ColdStartConfig(targets="policy"))
    assert [(p["id"], p.get("target_origin")) for p in chosen] == [("own", "policy"), ("given", None)]
    assert chosen[0]["reference"] == "def g():\n    return 2\n"
    assert [p["id"] for p in coldstart_candidates(problems, ColdStartConfig(targets="policy", limit=1))] == ["own"]
    assert [p["id"] for p in coldstart_candidates(problems, ColdStartConfig())] == ["given", "own"]


def test_task_hints_write_the_plan_and_the_thought_of_the_operation_on_the_line():
    from collections import Counter

    from tasks.coldstart.build import write_from_task_hints
    from tasks.problems.function_tasks import generate_tasks

    problem = next(p for p in generate_tasks("train", 0, 60, (2, 2)) if p["meta"]["ops"][:2] != p["meta"]["ops"][1:])
    code = problem["reference"]
    second_line = code.rstrip("\n").rsplit("\n", 1)[-1]
    offsets = [code.index("=") + 2, code.rindex(second_line) + len(second_line) - 2]
    sample = PendingSample(problem, code, offsets)
    repaired = Counter()
    write_from_task_hints(sample, repaired)
    assert sample.from_task and sample.plan.startswith("Steps: ")
    assert sample.thoughts == problem["meta"]["hints"][: len(sample.thoughts)] and len(sample.thoughts) == 2
    record, reason = assemble_sample(sample)
    assert reason is None and record["thoughts"] == sample.thoughts and record["plan"] == sample.plan
    foreign = PendingSample({"id": "x", "prompt": "Add.", "meta": {}}, "def f():\n    return 1\n", [20])
    write_from_task_hints(foreign, repaired)
    assert not foreign.from_task and foreign.thoughts == []
