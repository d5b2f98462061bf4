"""Evaluation's plain functions: the pass@k estimator, bootstrap intervals, thinking statistics,
entropy at think sites on the tiny model, benchmark selection, generation variants, the entropy plot."""

import math
from itertools import product

import pytest

from tasks.evaluation.scoring import pass_at_k, per_benchmark, per_problem
from tasks.evaluation.think_stats import (
    entropy_at_think_sites,
    entropy_at_think_sites_batched,
    response_features,
    summarize_entropy,
    summarize_thinking,
    think_site_offsets,
    token_kind_before,
)


def closed_form(n, c, k):
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


@pytest.mark.parametrize(
    "n, c, k, expected",
    [
        (1, 1, 1, 1.0),
        (1, 0, 1, 0.0),
        (5, 2, 1, 0.4),
        (5, 2, 2, 0.7),
        (10, 3, 5, 1 - 21 / 252),
        (4, 2, 3, 1.0),
        (20, 0, 10, 0.0),
    ],
)
def test_pass_at_k_matches_hand_computed_cases(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_matches_the_closed_form_everywhere_and_rejects_bad_k():
    for n, c, k in product(range(1, 13), range(0, 13), range(1, 13)):
        if c <= n and k <= n:
            assert pass_at_k(n, c, k) == pytest.approx(closed_form(n, c, k), abs=1e-12), (n, c, k)
    with pytest.raises(ValueError, match="pass@6 needs 1 <= k <= samples"):
        pass_at_k(5, 1, 6)
    with pytest.raises(ValueError, match="correct"):
        pass_at_k(3, 4, 1)


def test_per_benchmark_scores_from_samples():
    samples = [{"benchmark": "a", "problem_id": "p1", "status": s} for s in ("passed", "failed", "failed", "failed")]
    samples += [{"benchmark": "a", "problem_id": "p2", "status": s} for s in ("passed", "passed", "failed", "failed")]
    samples += [{"benchmark": "b", "problem_id": "q1", "status": "timeout"} for _ in range(4)]
    problems = per_problem(samples, [1, 2])
    by_id = {p["problem_id"]: p for p in problems}
    assert by_id["p1"]["pass@1"] == pytest.approx(0.25) and by_id["p2"]["pass@2"] == pytest.approx(1 - 1 / 6)
    scores = per_benchmark(problems, [1, 2], 200, 0.95, seed=0)
    assert scores["a"]["pass@1"] == pytest.approx(0.375) and scores["b"]["pass@1"] == 0.0
    assert scores["all"]["problems"] == 3 and scores["all"]["pass@1"] == pytest.approx(0.75 / 3)


RESPONSE = (
    "<think>\nloop over the values\n</think>\n```python\n"
    "def total(xs):\n"
    "    s = 0\n"
    "    for x in xs:\n"
    "        s += <thinkanywhere>only positives count</thinkanywhere>max(x, 0)\n"
    "    <thinkanywhere>done with the loop</thinkanywhere>return s\n"
    "```"
)


def test_response_features_locate_each_block():
    features = response_features(RESPONSE, lambda text: len(text.split()))
    assert features["upfront_think"] and features["inline_in_statement"]
    assert (
        features["inline_blocks"],
        features["upfront_tokens"],
        features["inline_tokens"],
        features["think_tokens"],
    ) == (2, 4, 7, 11)
    first, second = features["sites"]
    assert (first["line"], first["position"], first["token_before"], first["tokens"]) == (3, "middle", "operator", 3)
    assert (second["line"], second["position"], second["token_before"]) == (4, "start", "line_start")
    assert second["relative_line"] == 1.0


@pytest.mark.parametrize(
    "before, kind",
    [
        ("return ", "keyword"),
        ("x = foo", "name"),
        ("y = 3", "number"),
        ("s = 'a'", "string"),
        ("f(", "bracket"),
        ("f(a,", "delimiter"),
        ("a +", "operator"),
        ("", "line_start"),
        ("if x:", "delimiter"),
    ],
)
def test_token_kind_before_a_block(before, kind):
    assert token_kind_before(before) == kind


def test_thinking_summary_rates_buckets_and_empty_means():
    plain = "```python\ndef f():\n    return 1\n```"
    rows = [
        {**response_features(RESPONSE, lambda t: len(t.split())), "status": "passed"},
        {**response_features(plain, lambda t: len(t.split())), "status": "failed"},
    ]
    summary = summarize_thinking(rows)
    assert summary["upfront_think_rate"] == 0.5 and summary["inline_think_rate"] == 0.5
    assert summary["inline_blocks_per_response"] == 1.0 and summary["inline_blocks_per_thinking_response"] == 2.0
    assert summary["site_position"] == {"middle": 0.5, "start": 0.5}
    assert summary["accuracy_by_think_tokens"] == {
        "0": {"samples": 1, "accuracy": 0.0},
        "1-16": {"samples": 1, "accuracy": 1.0},
    }
    nothing = summarize_thinking([rows[1]])
    assert nothing["inline_thought_tokens_mean"] is None and nothing["upfront_tokens_mean"] is None


def test_think_site_offsets_point_into_the_stripped_code():
    stripped, offsets, code = think_site_offsets(RESPONSE)
    assert "<thinkanywhere>" not in stripped
    assert stripped[offsets[0] :].startswith("max(x, 0)") and stripped[offsets[1] :].startswith("return s")
    assert stripped[code[0] : code[1]].startswith("def total(xs):") and code[1] == stripped.rindex("```")


def test_entropy_at_an_injected_think_site_on_the_tiny_model(tiny_model_dir):
    import torch

    from tasks.models import load_for_inference

    tokenizer, model = load_for_inference(tiny_model_dir)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "sum the list"}], add_generation_prompt=True, tokenize=False
    )
    code = "def total(xs):\n    return sum(xs) + 1\n"
    site = code.index("1\n")  # the block goes right before the literal 1
    response = f"```python\n{code[:site]}<thinkanywhere>plus one</thinkanywhere>{code[site:]}```"
    values = entropy_at_think_sites(model, tokenizer, prompt, response)

    stripped = f"```python\n{code}```"
    encoded = tokenizer(prompt + stripped, return_offsets_mapping=True, add_special_tokens=False)
    at = len(prompt) + len("```python\n") + site
    token = next(t for t, (_, end) in enumerate(encoded["offset_mapping"]) if end > at)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([encoded["input_ids"]])).logits[0, token - 1].float()
    expected = float(-(torch.softmax(logits, -1) * torch.log_softmax(logits, -1)).sum())
    assert values["sites"] == [pytest.approx(expected, rel=1e-5)]
    code_start, code_end = len(prompt) + len("```python\n"), len(prompt) + len("```python\n") + len(code)
    code_tokens = [t for t, (s, e) in enumerate(encoded["offset_mapping"]) if s >= code_start and e <= code_end]
    assert len(values["elsewhere"]) == len(code_tokens) - 1 and all(v >= 0 for v in values["elsewhere"])
    assert entropy_at_think_sites(model, tokenizer, prompt, stripped) is None  # no block, no site


def test_entropy_in_padded_batches_matches_one_reply_at_a_time(tiny_model_dir):
    from tasks.models import load_for_inference

    tokenizer, model = load_for_inference(tiny_model_dir)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "sum the list"}], add_generation_prompt=True, tokenize=False
    )
    replies = [
        "```python\ndef total(xs):\n    return sum(xs) + <thinkanywhere>plus one</thinkanywhere>1\n```",
        "no code at all",
        "<think>plan</think>\n```python\ndef total(xs):\n    s = 0\n    for x in xs:\n        s += <thinkanywhere>clip</thinkanywhere>max(x, 0)\n"
        "    return s\n```",
        "```python\ndef total(xs):\n    return sum(xs)\n```",  # a code block without a site
        "```python\nx = <thinkanywhere>a</thinkanywhere>[1, 2, 3]\nprint(<thinkanywhere>b</thinkanywhere>x)\n```",
    ]
    batched = entropy_at_think_sites_batched(model, tokenizer, [(prompt, r) for r in replies], batch_size=3)
    assert [b is None for b in batched] == [False, True, False, True, False]
    for reply, together in zip(replies, batched):
        alone = entropy_at_think_sites(model, tokenizer, prompt, reply)
        if alone is None:
            continue
        assert (
            len(together["sites"]) == len(alone["sites"]) and len(together["elsewhere"]) == len(alone["elsewhere"]) > 0
        )
        assert together["sites"] == pytest.approx(alone["sites"], rel=1e-4, abs=1e-5)
        assert together["elsewhere"] == pytest.approx(alone["elsewhere"], rel=1e-4, abs=1e-5)
    assert len(batched[4]["sites"]) == 2


def test_benchmark_selection_holds_out_training_problems_and_names_missing_ids():
    from tasks.evaluation.evaluate import benchmark_pool, select_benchmark
    from tasks.problems.catalog import split_of
    from tasks.recipe import BenchmarkConfig, SplitRule
    from tasks.records import ProblemFormatError

    problems = [{"id": f"humaneval/{i}"} for i in range(40)]
    origins = {p["id"]: "humaneval" for p in problems}
    split = SplitRule(eval_fraction=0.3, split_seed=0)
    bench = BenchmarkConfig(name="humaneval", source="humaneval", held_out=True)
    pool = benchmark_pool(problems, origins, bench, split)
    assert pool and all(split_of(p["id"], 0.3, 0) == "eval" for p in pool) and len(pool) < 40
    subset = select_benchmark(pool, bench.model_copy(update={"limit": 3}), 0)
    assert len(subset) == 3 and {p["id"] for p in subset} <= {p["id"] for p in pool}
    assert select_benchmark(pool, bench.model_copy(update={"limit": 3}), 0) == subset
    train_id = next(p["id"] for p in problems if p not in pool)
    with pytest.raises(ProblemFormatError, match=f"ids not among.*{train_id}.*held-out"):
        select_benchmark(pool, bench.model_copy(update={"ids": [pool[0]["id"], train_id]}), 0)
    assert [
        p["id"] for p in select_benchmark(pool, bench.model_copy(update={"ids": [pool[1]["id"], pool[0]["id"]]}), 0)
    ] == sorted([pool[0]["id"], pool[1]["id"]])


def test_recipe_checks_evaluation_settings():
    from conftest import PROJECT_ROOT

    from tasks.recipe import RecipeError, load_recipe

    tiny = PROJECT_ROOT / "configs" / "tiny.yaml"
    with pytest.raises(RecipeError, match="pass@4 needs at least 4 samples"):
        load_recipe(tiny, ["evaluate.k=[1,4]", "evaluate.samples=2", "evaluate.temperature=0.8"])
    with pytest.raises(RecipeError, match="temperature 0 is greedy"):
        load_recipe(tiny, ["evaluate.samples=3"])
    recipe = load_recipe(tiny, ["evaluate.benchmarks=[{name: mbpp, source: 'mbpp:x.jsonl', held_out: true}]"])
    with pytest.raises(RecipeError, match="held_out needs 'mbpp:x.jsonl' among problems.sources"):
        recipe.benchmarks()
    default = load_recipe(tiny).benchmarks()
    assert [(b.name, b.held_out) for b in default] == [("humaneval", True), ("leetcode", True)]


def test_think_budget_caps_the_upfront_thought_on_the_tiny_model(tiny_model_dir):
    from tasks.generation import HFBackend, Sampling, chat_texts, generate_with_budget

    backend = HFBackend(tiny_model_dir, batch_size=4)
    texts = chat_texts(
        backend.tokenizer, [[{"role": "user", "content": f"problem {i}"}] for i in range(3)], "<think>\n"
    )
    replies = generate_with_budget(
        backend, texts, Sampling(max_new_tokens=12, stop_on_code_end=False), budget=4, prefill="<think>\n"
    )
    heads = backend.complete(texts, Sampling(max_new_tokens=4, stop=("</think>",), stop_on_code_end=False))
    for (reply,), (head,) in zip(replies, heads):
        expected = head if "</think>" in head else head + "\n</think>\n"
        assert reply.startswith(expected), (reply, head)  # at most 4 thought tokens, then closed
        assert len(reply) > len(expected)  # the answer was generated after the closed thought


def test_vllm_backend_without_vllm_says_how_to_get_it(tmp_path):
    import importlib.util

    from tasks.generation import open_backend

    if importlib.util.find_spec("vllm"):
        pytest.skip("vLLM is installed here")

    with pytest.raises(RuntimeError, match=r"vLLM is not installed.*thinkflow\[gpu\]"):
        open_backend("vllm", tmp_path, "bfloat16")


def test_entropy_histogram_is_drawn_only_for_evaluations_with_think_sites(tmp_path):
    from tasks.evaluation.report import draw_entropy

    without = [{"sites": [], "elsewhere": [0.5, 0.1]}]
    assert (
        not draw_entropy([without, []], ["base", "sft"], tmp_path / "none.png") and not (tmp_path / "none.png").exists()
    )
    with_sites = [{"sites": [2.0, 2.5], "elsewhere": [0.2, 0.4, 0.1, 1.0]}]
    assert draw_entropy([without, with_sites], ["base", "sft"], tmp_path / "entropy.png")
    assert (tmp_path / "entropy.png").stat().st_size > 5_000


def test_paired_difference_counts_discordant_problems_and_leaves_out_unpaired_ones():
    from tasks.evaluation.scoring import paired_difference

    def rows(solved, benchmark="humaneval"):
        return [{"benchmark": benchmark, "problem_id": f"p{i}", "pass@1": float(s)} for i, s in enumerate(solved)]

    ours = rows([1, 1, 0, 0, 1]) + [{"benchmark": "humaneval", "problem_id": "only-ours", "pass@1": 1.0}]
    theirs = rows([0, 1, 1, 0, 0])
    result = paired_difference(ours, theirs, resamples=500, confidence=0.95)
    entry = result["humaneval"]
    assert entry["problems"] == 5 and entry["unpaired"] == 1
    assert entry["difference"] == pytest.approx(0.2) and (entry["only_ours"], entry["only_theirs"]) == (2, 1)
    assert entry["ci"][0] < 0.2 < entry["ci"][1] and result["all"]["difference"] == pytest.approx(0.2)
    same = paired_difference(theirs, theirs, resamples=100, confidence=0.95)["all"]
    assert same["difference"] == 0 and same["ci"] == [0.0, 0.0]


def test_entropy_ratio_interval_resamples_whole_responses():
    from tasks.evaluation.scoring import ratio_interval

    groups = [([2.0, 2.2], [1.0, 1.0, 1.0]), ([1.8], [1.0, 1.1]), ([2.1], [0.9])]
    low, high = ratio_interval(groups, resamples=500, confidence=0.95)
    assert 1.5 < low <= high < 2.6
    assert ratio_interval([([], [1.0])], 100, 0.95) is None
    summary = summarize_entropy([{"sites": s, "elsewhere": e} for s, e in groups], resamples=200)
    assert summary["entropy_ratio_ci"][0] <= summary["entropy_ratio"] <= summary["entropy_ratio_ci"][1]


def test_every_checkpoint_is_paired_with_every_earlier_one_and_the_deltas_become_metrics():
    from tasks.evaluation.report import paired_comparisons, paired_metrics

    def rows(solved):
        return [{"benchmark": "functions", "problem_id": f"p{i}", "pass@1": float(s)} for i, s in enumerate(solved)]

    report = {"variant": {"name": "thinking"}, "scoring": {"bootstrap_resamples": 200, "confidence": 0.95}}
    pairs = paired_comparisons(
        [report] * 3, [rows([0, 0, 1, 0]), rows([1, 0, 1, 0]), rows([1, 1, 1, 1])], ["base", "sft", "rl"]
    )
    assert [(p["checkpoint"], p["baseline"]) for p in pairs] == [("sft", "base"), ("rl", "base"), ("rl", "sft")]
    metrics = paired_metrics(pairs)
    assert metrics["paired/rl/functions/delta"] == pytest.approx(0.75)
    assert metrics["paired/rl-vs-sft/functions/delta"] == pytest.approx(0.5)
    assert metrics["paired/sft/all/problems"] == 4
    assert metrics["paired/rl/functions/low"] <= 0.75 <= metrics["paired/rl/functions/high"]
