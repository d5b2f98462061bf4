"""Filters: each one's decisions, the chain's exact counts on the fixtures, config errors, and
the reconciled report (in = kept + filtered + quarantined per source and reason)."""

import json
import random

import pytest
from conftest import FIXTURES

from sandbox.config import SandboxConfig
from tasks.problems.catalog import load_source, record_reference_tests
from tasks.problems.filters import (
    FILTERS,
    FilterContext,
    ReconciliationError,
    apply_filters,
    difficulty_band,
    exact_duplicate,
    near_duplicate,
    pass_rate_band,
    prompt_length,
    reconcile,
)
from tasks.recipe import (
    DEFAULT_FILTERS,
    FILTER_NAMES,
    DifficultyBandFilter,
    ExactDuplicateFilter,
    NearDuplicateFilter,
    PassRateBandFilter,
    ProblemsConfig,
    PromptLengthFilter,
    RecipeError,
    load_recipe,
)

SOURCES = [
    f"skywork:{FIXTURES}/skywork.parquet",
    f"mbpp:{FIXTURES}/mbpp.jsonl",
    f"livecodebench:{FIXTURES}/livecodebench.jsonl",
]


def problem(pid, prompt, **extra):
    return {
        "id": pid,
        "source": "x",
        "prompt": prompt,
        "tests": {"kind": "stdio", "inputs": ["1"], "outputs": ["1"]},
        "starter_code": "",
        "reference": None,
        "meta": {},
        **extra,
    }


@pytest.fixture(scope="module")
def loaded():
    results = [load_source(name) for name in SOURCES]
    problems = [p for r in results for p in r.problems]
    record_reference_tests(problems, SandboxConfig())
    ledger = {"sources": {}, "origins": {}}
    for name, result in zip(SOURCES, results):
        ledger["sources"][name] = {
            "rows_in": result.rows_in,
            "problems": len(result.problems),
            "skipped": dict(result.skipped),
            "quarantined": dict(result.quarantine_counts()),
        }
        ledger["origins"].update({p["id"]: name for p in result.problems})
    return problems, ledger


def test_default_chain_on_the_fixtures(loaded, tiny_model_dir):
    problems, ledger = loaded
    ctx = FilterContext(SandboxConfig(), tiny_model_dir, "You write Python.")
    kept, dropped = apply_filters(problems, list(DEFAULT_FILTERS), ctx)
    assert [p["id"] for p in kept] == [
        "skywork/0",
        "skywork/1",
        "mbpp/1",
        "mbpp/2",
        "mbpp/4",
        "livecodebench/abc001_a",
        "livecodebench/3001",
    ]
    assert [(d["problem"]["id"], d["filter"]) for d in dropped] == [
        ("skywork/2", "difficulty_band"),
        ("skywork/3", "difficulty_band"),
        ("skywork/4", "exact_duplicate"),
        ("skywork/5", "near_duplicate"),
        ("mbpp/3", "reference_fails"),
    ]
    assert dropped[0]["detail"] == "difficulty 16/16 for DeepSeek-R1-Distill-Qwen-7B outside 1-15"
    assert dropped[2]["detail"] == "same prompt as skywork/0"
    assert dropped[3]["detail"].startswith("near-duplicate of skywork/1 (Jaccard 0.8")
    assert dropped[4]["detail"].startswith("reference failed (1/2)")
    table = reconcile(ledger, kept, dropped)
    rows = {(r["source"].split(":")[0], r["outcome"], r["reason"]): r["rows"] for r in table}
    assert rows[("skywork", "in", "")] == 13 and rows[("skywork", "kept", "")] == 2
    assert (
        rows[("skywork", "filtered", "difficulty_band")] == 2
        and rows[("skywork", "quarantined", "io_length_mismatch")] == 1
    )
    assert sum(n for (s, o, _), n in rows.items() if s == "skywork" and o == "quarantined") == 7
    assert (
        rows[("mbpp", "in", "")] == 11
        and rows[("mbpp", "kept", "")] == 3
        and rows[("mbpp", "filtered", "reference_fails")] == 1
    )
    assert rows[("livecodebench", "in", "")] == 8 and rows[("livecodebench", "kept", "")] == 2
    for source in ("skywork", "mbpp", "livecodebench"):
        parts = sum(n for (s, o, _), n in rows.items() if s == source and o in ("kept", "filtered", "quarantined"))
        assert parts == rows[(source, "in", "")]


def test_reconcile_refuses_a_row_that_went_missing(loaded):
    problems, ledger = loaded
    with pytest.raises(ReconciliationError, match=r"skywork:.*13 rows in, but kept \+ filtered \+ quarantined = 12"):
        reconcile(ledger, problems[1:], [])


def test_prompt_length_counts_chat_tokens(tiny_model_dir):
    short, long = problem("a", "add two numbers"), problem("b", "add two numbers " * 400)
    ctx = FilterContext(policy_dir=tiny_model_dir, system_prompt="sys")
    decisions = prompt_length([short, long], ctx, PromptLengthFilter(max_tokens=200))
    assert decisions[0] is None and decisions[1].endswith("prompt tokens > 200")
    assert int(decisions[1].split()[0]) > 400


def test_difficulty_band_judges_only_sources_that_have_it():
    levels = lambda n: {"meta": {"model_difficulty": {"m": n}}}  # noqa: E731
    problems = [
        problem("a", "p", **levels(0)),
        problem("b", "p", **levels(1)),
        problem("c", "p", **levels(15)),
        problem("d", "p", **levels(16)),
        problem("e", "p"),
        problem("f", "p", meta={"model_difficulty": {"other": 3}}),
    ]
    decisions = difficulty_band(problems, FilterContext(), DifficultyBandFilter(model="m", low=1, high=15))
    assert [d is None for d in decisions] == [False, True, True, False, True, False]
    assert decisions[5] == "no difficulty for m (has other)"


def test_exact_duplicate_ignores_case_punctuation_and_spacing():
    problems = [
        problem("a", "Sum the list."),
        problem("b", "  sum THE\n list. "),
        problem("c", "Sum the lists."),
        problem("d", "Sum the list!"),
    ]
    assert exact_duplicate(problems, FilterContext(), ExactDuplicateFilter()) == [None, "same prompt as a", None, None]


def test_humaneval_bracket_problems_are_not_duplicates():
    humaneval = {p["id"]: p for p in load_source("humaneval").problems}
    pair = [humaneval["humaneval/56"], humaneval["humaneval/61"]]  # the same task with <> and with ()
    assert exact_duplicate(pair, FilterContext(), ExactDuplicateFilter()) == [None, None]
    assert near_duplicate(pair, FilterContext(), NearDuplicateFilter()) == [None, None]


def test_near_duplicate_finds_rewordings_and_keeps_distinct_prompts():
    base = (
        "given an array of integers nums and an integer target return indices of the two numbers such that they add up "
        "to target you may assume that each input would have exactly one solution and you may not use the same element twice"
    )
    distinct = [" ".join(f"w{rng.randrange(300)}" for _ in range(40)) for rng in map(random.Random, range(30))]
    problems = [problem("base", base)] + [problem(f"d{i}", t) for i, t in enumerate(distinct)]
    problems += [
        problem("reworded", base.replace("you may assume", "assume")),  # a light edit: a near duplicate
        problem("half", base[: len(base) // 2] + " and then sort the output in decreasing order of value please"),
    ]
    decisions = near_duplicate(problems, FilterContext(), NearDuplicateFilter(threshold=0.7))
    dropped = {p["id"]: d for p, d in zip(problems, decisions) if d}
    assert list(dropped) == ["reworded"] and dropped["reworded"].startswith("near-duplicate of base (Jaccard 0.")
    with pytest.raises(ValueError, match="multiple of bands"):
        NearDuplicateFilter(permutations=10, bands=4)


def test_pass_rate_band_samples_the_policy_and_runs_the_samples(tiny_model_dir):
    problems = [problem("p", "print 1", tests={"kind": "stdio", "inputs": [""], "outputs": ["1"]})]
    decisions = pass_rate_band(
        problems, FilterContext(SandboxConfig(), tiny_model_dir, "sys"), PassRateBandFilter(samples=2, max_new_tokens=8)
    )
    assert decisions == ["pass rate 0.00 outside 0.2-0.8"]  # the untrained tiny model never solves it


def test_filter_settings_are_checked_by_the_recipe_and_every_filter_has_its_section():
    assert ProblemsConfig.model_validate({"filters": [{"name": "prompt_length", "max_tokens": "512"}]}).filters == [
        PromptLengthFilter(max_tokens=512)
    ]
    with pytest.raises(ValueError, match="does not match any of the expected tags: 'prompt_length', 'difficulty_band'"):
        ProblemsConfig.model_validate({"filters": [{"name": "lenght"}]})
    with pytest.raises(ValueError, match=r"filters.0.prompt_length.max\n  Extra inputs are not permitted"):
        ProblemsConfig.model_validate({"filters": [{"name": "prompt_length", "max": 3}]})
    with pytest.raises(ValueError, match=r"filters.0.near_duplicate.threshold\n  Input should be a valid number"):
        ProblemsConfig.model_validate({"filters": [{"name": "near_duplicate", "threshold": "high"}]})
    assert set(FILTERS) == set(
        FILTER_NAMES
    )  # a registered filter without settings, or settings without a filter, is a bug


def test_recipe_names_a_bad_filter(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        json.dumps({"problems": {"filters": [{"name": "exact_duplicate"}, {"name": "prompt_length", "max": 1}]}})
    )
    with pytest.raises(RecipeError, match="problems.filters.1.prompt_length.max: Extra inputs are not permitted"):
        load_recipe(recipe)
