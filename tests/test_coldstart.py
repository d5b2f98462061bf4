from tasks.coldstart import PendingSample, assemble_sample, choose_insertion_offsets, insertion_candidates, token_entropies
from tasks.models import load_for_inference

CODE = 'def f(xs):\n    """Doc string."""\n    total = sum(x for x in xs)  # note\n    return total\n'


def test_candidates_sit_inside_statements_never_in_strings_or_comments():
    offsets = insertion_candidates(CODE)
    assert offsets
    for offset in offsets:
        line_start = CODE.rfind("\n", 0, offset) + 1
        assert CODE[line_start:offset].strip(), "a candidate may not open a line"
        line = CODE[line_start:CODE.find("\n", offset)]
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
    good = PendingSample(problem, CODE, [CODE.index("sum")], plan="sum them", thoughts=["a generator is enough"])
    record, reason = assemble_sample(good)
    assert reason is None and record["annotated_code"].count("<thinkanywhere>") == 1
    assert assemble_sample(PendingSample(problem, CODE, [CODE.index("sum")], plan="p", thoughts=["\n\n"]))[1] == "empty_thought"
    assert assemble_sample(PendingSample(problem, CODE, [CODE.index("sum")], plan=" ", thoughts=["t"]))[1] == "empty_plan"
    own_line = PendingSample(problem, CODE, [CODE.index("    return")], plan="p", thoughts=["t"])
    assert assemble_sample(own_line)[1] == "not_inside_statement"
