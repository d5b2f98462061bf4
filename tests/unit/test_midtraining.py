"""The thinking-midtraining corpus: chunking, segments, verification, the RL half's splits."""

import pytest
from transformers import AutoTokenizer

from tasks.midtraining.corpus import (
    chunk_text,
    corpus_documents,
    in_rl_half,
    rl_examples,
    segment_at_line_ends,
    segments_of_interleaved,
    verify_sample,
)
from tasks.thinking import strip_thoughts


def test_chunks_are_bounded_and_lossless(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    (name, text), *_ = corpus_documents("python-stdlib", max_documents=1, seed=3)
    text += "x" * 3000 + "\n"  # one line far longer than a chunk: cut by tokens
    chunks = chunk_text(text, tokenizer, max_tokens=48)
    assert "".join(chunks) == text and len(chunks) > 3
    assert max(len(tokenizer(c, add_special_tokens=False)["input_ids"]) for c in chunks) <= 48


def test_segments_cut_at_line_ends_and_concatenate_back():
    chunk = "a\nb\nc\nd\ne\n"
    assert segment_at_line_ends(chunk, 3) == ["a\nb\n", "c\n", "d\ne\n"]
    assert segment_at_line_ends("one line\n", 3) == ["one line\n"]


def test_verification_rejects_changed_text_and_empty_thoughts():
    chunk = "first line\nsecond line\n"
    sample, reason = verify_sample(chunk, ["first line\n", "second line\n"], ["what comes <think>next"])
    assert reason is None and sample["text"] == "first line\n<think>what comes next</think>second line\n"
    assert strip_thoughts(sample["text"]) == chunk
    assert verify_sample(chunk, ["first line\n", "second  line\n"], ["t"]) == (None, "concat_mismatch")
    assert verify_sample(chunk, ["first line\n", "second line\n"], ["  "]) == (None, "empty_thought")
    assert verify_sample(chunk, [chunk], []) == (None, "no_thought")


def test_interleaved_annotator_output_is_split_and_verified():
    segments, thoughts = segments_of_interleaved("x1 <think>t1</think> x2<think>t2</think>x3 <think>open")
    assert segments == ["x1 ", " x2", "x3 <think>open"] and thoughts == ["t1", "t2"]
    assert verify_sample("x1  x2x3 ", segments, thoughts) == (None, "concat_mismatch")  # the model changed the text


def test_rl_examples_hold_every_prefix_thought_suffix_split():
    sample = {"segments": ["a", "b", "c"], "thoughts": ["t1", "t2"]}
    assert rl_examples("doc#0", sample) == [
        {"chunk_id": "doc#0", "boundary": 0, "prefix": "a", "thought": "t1", "suffix": "b"},
        {"chunk_id": "doc#0", "boundary": 1, "prefix": "ab", "thought": "t2", "suffix": "c"},
    ]
    halves = [in_rl_half(f"doc#{i}", 0.5, 0) for i in range(200)]
    assert 70 < sum(halves) < 130 and halves == [in_rl_half(f"doc#{i}", 0.5, 0) for i in range(200)]


def test_judge_agreement_counts_the_table_and_kappa():
    from tasks.midtraining.judge_agreement import agreement_stats

    llm, overlap = [1, 1, 0, 0, 1, 0, 0, 0], [1, 0, 0, 0, 1, 1, 0, 0]
    stats = agreement_stats(llm, overlap)
    assert (stats["both_yes"], stats["both_no"], stats["only_first"], stats["only_second"]) == (2, 4, 1, 1)
    assert stats["agreement"] == 6 / 8
    # expected by chance: 3/8 * 3/8 + 5/8 * 5/8 = 34/64; kappa = (48/64 - 34/64) / (30/64)
    assert abs(stats["cohen_kappa"] - 14 / 30) < 1e-12
    assert agreement_stats([1, 1], [1, 1])["cohen_kappa"] == 1.0
    with pytest.raises(ValueError, match="equally long"):
        agreement_stats([1], [1, 0])


def test_judge_agreement_has_intervals_and_control_pairs_with_known_answers():
    from tasks.midtraining.judge_agreement import bootstrap_agreement, control_pairs, control_rates

    llm, overlap = [1, 1, 0, 0, 1, 0, 0, 0] * 5, [1, 0, 0, 0, 1, 1, 0, 0] * 5
    intervals = bootstrap_agreement(llm, overlap, resamples=200)
    low, high = intervals["agreement"]
    assert low < 0.75 < high  # around the observed 6/8, not a point
    assert intervals["cohen_kappa"][0] < 14 / 30 < intervals["cohen_kappa"][1]
    assert bootstrap_agreement([1, 0] * 10, [1, 0] * 10)["agreement"] == (1.0, 1.0)
    held = [{"prefix": f"p{i}", "suffix": f"s{i}"} for i in range(4)] + [{"prefix": "p4", "suffix": "s1"}]
    pairs = control_pairs(held)
    truth = [p for p in pairs if p["control"] == "truth"]
    mismatch = [p for p in pairs if p["control"] == "mismatch"]
    assert [p["prediction"] for p in truth] == [p["truth"] for p in truth] == ["s0", "s1", "s2", "s3", "s1"]
    assert (
        all(p["prediction"] != p["truth"] for p in mismatch) and len(mismatch) == 4
    )  # p4's partner p1 has the same suffix text
    verdicts = [1.0 if p["control"] == "truth" or p is mismatch[0] else 0.0 for p in pairs]  # one false YES
    rates = control_rates(pairs, verdicts)
    assert rates == {
        "llm_yes_rate_on_truth": 1.0,
        "truth_controls": 5,
        "llm_yes_rate_on_mismatch": 0.25,
        "mismatch_controls": 4,
    }


def test_the_arms_table_puts_each_arms_pass_at_1_after_rlvr_on_its_row():
    from tasks.midtraining.report import agreement_lines, arms_table

    held_out = {
        "examples": 3,
        "closes_thought": 1.0,
        "thought_words": 4.0,
        "opens_thought_unprompted": 0.5,
        **{
            f"{name}{end}": value
            for name, value in (
                ("judge_reward_thinking", 0.1),
                ("judge_reward_no_thinking", 0.2),
                ("judge_reward_plain", 0.3),
                ("suffix_perplexity", 9.0),
            )
            for end in ("", "_ci_low", "_ci_high")
        },
    }
    evaluation = {"pass_at_k": {"all": {"pass@1": 0.125, "pass@1_ci": [0.0, 0.25], "problems": 24}}}
    header, rows = arms_table(["base", "sft_think"], [held_out, held_out], {"sft_think": evaluation})
    assert header[-1] == "pass@1 after RLVR from it"
    assert rows[0][-1] == "–" and rows[1][-1] == "0.125 [0.000, 0.250] (24 problems)"
    assert len(arms_table(["base"], [held_out])[0]) == len(header) - 1  # no RLVR: no column
    before = {"pass_at_k": {"all": {"pass@1": 0.25, "pass@1_ci": [0.1, 0.4], "problems": 24}}}
    header, rows = arms_table(
        ["base", "sft_think"], [held_out, held_out], {"sft_think": evaluation}, {"base": before, "sft_think": before}
    )
    assert header[-2:] == ["pass@1 before RLVR", "pass@1 after RLVR from it"]
    assert rows[0][-2:] == ["0.250 [0.100, 0.400] (24 problems)", "–"] and rows[1][-2] == rows[0][-2]
    stats = {
        "llm_judge": {"model": "m"},
        "overlap_threshold": 0.2,
        "pairs": 8,
        "agreement": 0.75,
        "agreement_ci_low": 0.5,
        "agreement_ci_high": 1.0,
        "cohen_kappa": 0.47,
        "cohen_kappa_ci_low": -0.1,
        "cohen_kappa_ci_high": 1.0,
        "yes_rate_first": 0.375,
        "yes_rate_second": 0.375,
        "both_yes": 2,
        "both_no": 4,
        "only_first": 1,
        "only_second": 1,
        "llm_yes_rate_on_truth": 0.0,
        "truth_controls": 5,
        "llm_yes_rate_on_mismatch": 0.0,
        "mismatch_controls": 5,
    }
    text = agreement_lines(stats)
    assert "agreement 0.750 [0.500, 1.000]" in text and "YES to the true continuation 0.000 (5 pairs)" in text


def test_a_plain_continuation_is_judged_without_the_thoughts_it_opened(tiny_model_dir):
    from tasks.midtraining.evaluation import plain_guess

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert plain_guess("x = 1\n<think>then y</think>y = 2\n", tokenizer, 100) == "x = 1\ny = 2\n"
    assert plain_guess("x = 1\n<think>never closed, y = 2", tokenizer, 100) == "x = 1\n"
    long = "value = compute(value)\n" * 20
    cut = plain_guess(long, tokenizer, 10)
    assert long.startswith(cut) and len(tokenizer(cut, add_special_tokens=False)["input_ids"]) == 10


def test_models_are_paired_on_the_same_held_out_examples():
    from tasks.midtraining.report import paired_rows

    def rows(rewards, nll_per_token):
        return [
            {
                "chunk_id": f"c{i}",
                "boundary": 0,
                "reward_thinking": r,
                "reward_no_thinking": r / 2,
                "reward_plain": 0.0,
                "suffix_nll": nll_per_token * 10,
                "suffix_tokens": 10,
            }
            for i, r in enumerate(rewards)
        ]

    base, better = rows([0.0, 0.0, 0.2, 0.0], 3.0), rows([0.5, 0.5, 0.2], 2.5)  # c3 only in base: left out
    header, table = paired_rows(["base", "sft"], [base, better], resamples=200)
    assert header[:3] == ["model", "vs", "examples"] and len(table) == 1
    model, versus, examples, thinking, empty_thought, plain, nll = table[0]
    assert (model, versus, examples) == ("sft", "base", "3")
    assert (
        thinking.startswith("+0.333 [+0.000, +0.500]")
        and empty_thought.startswith("+0.167 [")
        and plain == "+0.000 [+0.000, +0.000]"
    )
    assert nll == "-0.500 [-0.500, -0.500]"
    assert (
        len(paired_rows(["a", "b", "c"], [base, better, base], resamples=200)[1]) == 3
    )  # every later model vs every earlier


def test_a_guess_after_a_thought_gets_the_same_token_budget_as_one_without(tiny_model_dir):
    from tasks.midtraining.evaluation import cut_guess
    from tasks.midtraining.next_segment import split_thought

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    guess = "return sorted(values, key=len) if values else []"
    budget = len(tokenizer(guess, add_special_tokens=False)["input_ids"]) - 3
    thought, cut = split_thought(cut_guess(f"<think>sort by length</think>{guess}", tokenizer, budget))
    assert (
        thought == "sort by length"
        and guess.startswith(cut)
        and len(tokenizer(cut, add_special_tokens=False)["input_ids"]) == budget
    )
    short = "<think>x</think>return []"
    assert cut_guess(short, tokenizer, budget) == short
    unclosed = "<think>still thinking about " + guess
    assert cut_guess(unclosed, tokenizer, 2) == unclosed and split_thought(unclosed)[0] is None


def test_rlvr_signal_per_arm_counts_steps_whose_groups_all_tied():
    from tasks.midtraining.report import rlvr_signal_rows

    metrics = {
        "base": {
            "reward_first_quarter": 0.1,
            "reward_last_quarter": 0.3,
            "reward_gain": 0.2,
            "reward_gain_ci_low": 0.05,
            "reward_gain_ci_high": 0.35,
            "truncated_mean": 0.25,
        },
        "sft_raw": {},
    }
    no_signal = {"base": [(1, 0.5), (2, 1.0), (3, 0.25), (4, 0.0)], "sft_raw": [(1, 1.0), (2, 1.0)]}
    header, rows = rlvr_signal_rows(["base", "sft_raw"], metrics, no_signal)
    assert rows[0] == ["base", "4", "0.56", "0.00", "1", "0.100 → 0.300", "+0.200 [+0.050, +0.350]", "0.25"]
    assert rows[1][:5] == ["sft_raw", "2", "0.00", "0.00", "2"] and rows[1][5:] == ["–", "– (under 4 steps)", "–"]
    assert len(header) == len(rows[0])


def test_the_probe_paragraph_reads_the_trend_and_the_thought_length():
    from tasks.midtraining.report import probe_lines

    assert probe_lines({"reward_gain": 0.1}, []) == ""  # no probe: nothing to say
    trend = {
        "first_quarter": 0.1,
        "last_quarter": 0.2,
        "gain": 0.1,
        "gain_ci_low": 0.02,
        "gain_ci_high": 0.18,
        "gain_ci_low_prompts": -0.01,
        "gain_ci_high_prompts": 0.2,
        "points": 5,
        "prompts": 16,
    }
    text = probe_lines({f"probe_reward_{k}": v for k, v in trend.items()}, [(0, 12.0), (16, 15.5)])
    assert "(16 prefixes, 5 probe points)" in text and "gain +0.100 [+0.020, +0.180] on these prefixes" in text
    assert "[-0.010, +0.200] for prefixes like these" in text and "12.0 → 15.5 words (steps 0 → 16)" in text


def test_the_pass_at_1_pairs_kept_are_the_ones_the_rlvr_claim_reads():
    from tasks.midtraining.report import rlvr_pass_pairs

    arms = ["base", "sft_think"]
    labels = ["base", "sft_think", "rlvr from base", "rlvr from sft_think"]
    rows = [[later, earlier, "thinking", "+0.1"] for i, later in enumerate(labels) for earlier in labels[:i]]
    kept = [(row[0], row[1]) for row in rlvr_pass_pairs(rows, arms)]
    assert kept == [
        ("sft_think", "base"),
        ("rlvr from base", "base"),
        ("rlvr from sft_think", "sft_think"),
        ("rlvr from sft_think", "rlvr from base"),
    ]  # not an arm after RLVR against another arm's start
