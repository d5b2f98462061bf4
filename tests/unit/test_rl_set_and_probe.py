"""What decides RL's signal: the calibration band and table, the probe-set trend, the share of groups
whose correctness varies, the upfront-only arm's weights, precision chosen by the hardware."""

import pytest

from tasks.problems.calibration import calibration_markdown, calibration_table, in_band, pooled_rows, rl_candidates
from tasks.recipe import CalibrationConfig, Recipe, RecipeError, RLSection
from tasks.training.probe import probe_steps, probe_trend, score_completions
from tasks.training.rewards import correct_varies_term


def rows(*cases):
    return [
        {"problem_id": f"p{i}", "difficulty": d, "samples": 4, "passed": k, "pass_rate": k / 4}
        for i, (d, k) in enumerate(cases)
    ]


def test_the_band_keeps_problems_solved_sometimes_and_the_table_counts_them():
    cfg = CalibrationConfig(enabled=True, low=0.25, high=0.75)
    calibrated = rows(("1 ops", 0), ("1 ops", 1), ("1 ops", 4), ("2 ops", 2), ("2 ops", 3), ("2 ops", 0))
    assert [in_band(r, cfg) for r in calibrated] == [False, True, False, True, True, False]
    table = {r["difficulty"]: r for r in calibration_table(calibrated, cfg)}
    assert table["1 ops"]["problems"] == 3 and table["1 ops"]["pass_rate"] == pytest.approx(5 / 12)
    assert table["1 ops"]["with_variance"] == pytest.approx(1 / 3) and table["1 ops"]["kept"] == 1
    assert table["2 ops"]["kept"] == 2 and table["all"]["kept"] == 3 and table["all"]["problems"] == 6
    text = calibration_markdown(list(table.values()), cfg, 0.6, "sft")
    assert "| 2 ops | 3 | 0.417 | 0.67 | 0.67 | 2 |" in text and "temperature 0.6" in text
    with pytest.raises(ValueError, match="must not exceed"):
        CalibrationConfig(low=0.8, high=0.2)


def test_arms_share_one_rl_set_chosen_by_their_pooled_pass_rate():
    cfg = CalibrationConfig(enabled=True, low=0.25, high=0.75)
    strong, weak = rows(("1 ops", 4), ("1 ops", 2), ("2 ops", 0)), rows(("1 ops", 0), ("1 ops", 1), ("2 ops", 0))
    pooled = pooled_rows([strong, weak])
    assert [(r["problem_id"], r["samples"], r["passed"], r["pass_rate"]) for r in pooled] == [
        ("p0", 8, 4, 0.5),
        ("p1", 8, 3, 0.375),
        ("p2", 8, 0, 0.0),
    ]
    assert [in_band(r, cfg) for r in pooled] == [True, True, False]  # p0: the strong arm alone would have left it out
    assert [in_band(r, cfg) for r in strong] == [False, True, False]


def test_candidates_follow_the_rl_order_and_sources():
    problems = [{"id": f"a/{i}", "source": "a"} for i in range(6)] + [{"id": "b/0", "source": "b"}]
    chosen = rl_candidates(problems, RLSection(sources=["a"], shuffle_seed=3), limit=4)
    assert len(chosen) == 4 and {p["source"] for p in chosen} == {"a"}
    assert chosen == rl_candidates(list(reversed(problems)), RLSection(sources=["a"], shuffle_seed=3), limit=4)
    with pytest.raises(ValueError, match="no problems from them"):
        rl_candidates(problems, RLSection(sources=["c"]), None)


def test_correct_varies_marks_groups_with_some_but_not_all_correct():
    problems = ["p1"] * 4 + ["p2"] * 4 + ["p3"] * 4
    correct = [1, 0, 0, 0] + [1, 1, 1, 1] + [0, 0, 0, 0]
    assert correct_varies_term(correct, problems) == [1.0] * 4 + [0.0] * 8


def test_probe_steps_and_the_trend_paired_by_prompt():
    assert probe_steps(24, 4) == [0, 4, 8, 12, 16, 20, 24] and probe_steps(10, 4) == [0, 4, 8, 10]
    probe = []
    for step in (0, 4, 8, 12):
        for prompt in range(4):
            for sample in range(2):
                reward = 0.1 * prompt + (0.5 if step >= 8 else 0.0)  # every prompt gains 0.5 in the second half
                probe.append({"step": step, "prompt": prompt, "sample": sample, "reward": reward, "correct": reward})
    series, trend = probe_trend(probe)
    assert [v for _, v in series["probe_reward"]] == pytest.approx([0.15, 0.15, 0.65, 0.65])
    assert trend["gain"] == pytest.approx(0.5) and trend["gain_ci_low"] == pytest.approx(0.5)
    assert trend["points"] == 4 and trend["prompts"] == 4
    assert probe_trend([r for r in probe if r["step"] < 8])[1]["gain"] == pytest.approx(
        0.0
    )  # two points: first vs last
    assert probe_trend([r for r in probe if r["step"] == 0])[1] == {}


def probe_rows(rewards: dict[int, dict[int, list[float]]]) -> list[dict]:
    return [
        {"step": step, "prompt": prompt, "sample": k, "reward": value, "completion": f"reply {k}"}
        for step, by_prompt in rewards.items()
        for prompt, values in by_prompt.items()
        for k, value in enumerate(values)
    ]


def test_probe_intervals_separate_sampling_noise_from_how_differently_prompts_move():
    # every completion of a prompt scores the same: the fixed-set interval has no width, while prompts
    # that move in opposite directions make the interval over prompts wide
    moving = probe_rows({0: {p: [0.5] * 4 for p in range(8)}, 16: {p: [1.0 if p < 5 else 0.0] * 4 for p in range(8)}})
    series, trend = probe_trend(moving, resamples=500)
    assert set(series) == {"probe_reward"}  # the completion text is kept in the rows, not plotted
    assert trend["gain"] == pytest.approx((5 * 0.5 - 3 * 0.5) / 8)
    assert trend["gain_ci_low"] == pytest.approx(trend["gain"]) == pytest.approx(trend["gain_ci_high"])
    assert trend["gain_ci_low_prompts"] < 0 < trend["gain_ci_high_prompts"]
    # every prompt moves alike but its completions disagree: both intervals have width
    noisy = probe_rows(
        {0: {p: [0.0, 1.0, 0.0, 0.0] for p in range(8)}, 16: {p: [1.0, 1.0, 0.0, 1.0] for p in range(8)}}
    )
    trend = probe_trend(noisy, resamples=500)[1]
    assert trend["gain"] == pytest.approx(0.5)
    assert 0 < trend["gain_ci_low"] < 0.5 < trend["gain_ci_high"]


def test_probe_scores_with_the_runs_own_weighted_terms():
    def correct(completions, **kwargs):
        return [1.0 if "ok" in c else 0.0 for c in completions]

    def short(completions, **kwargs):
        return [1.0 if len(c) < 5 else 0.0 for c in completions]

    scored = score_completions(
        {"correct": (correct, 0.9), "short": (short, 0.1)}, ["ok", "not fine"], {"problem_json": ["{}", "{}"]}
    )
    assert scored == [
        {"correct": 1.0, "short": 1.0, "reward": pytest.approx(1.0)},
        {"correct": 0.0, "short": 0.0, "reward": 0.0},
    ]


def test_the_upfront_only_arm_moves_the_inline_weight_to_the_upfront_term():
    arm = RLSection().upfront_only()
    assert arm.reward.weights == {"correct": 0.9, "upfront_think": pytest.approx(0.1), "inline_think": 0.0}
    assert arm.model_copy(update={"reward": RLSection().reward}) == RLSection()  # nothing else differs


def test_auto_precision_follows_the_hardware_and_training_follows_the_model(monkeypatch):
    import tasks.precision as precision

    monkeypatch.setattr(precision, "bf16_hardware", lambda: "a CPU with AMX-BF16")
    recipe = Recipe.model_validate({"model": {"torch_dtype": "auto"}, "sft": {"bf16": False}})
    resolved = recipe.with_resolved_precision()
    assert resolved.model.torch_dtype == "bfloat16" and resolved.rl.bf16 is True and resolved.sft.bf16 is False
    assert resolved.midtraining.rl.bf16 is True
    monkeypatch.setattr(precision, "bf16_hardware", lambda: None)
    assert recipe.with_resolved_precision().model.torch_dtype == "float32"
    assert recipe.with_resolved_precision().rl.bf16 is False
    assert Recipe.model_validate({"model": {"torch_dtype": "float32"}}).with_resolved_precision().rl.bf16 is False
    assert precision.resolve_dtype("bfloat16") == ("bfloat16", "set in the recipe")


def test_cpuinfo_flag(tmp_path):
    from tasks.precision import cpu_has_amx_bf16

    (tmp_path / "with").write_text("flags : fpu sse amx_bf16 amx_tile\n")
    (tmp_path / "without").write_text("flags : fpu sse avx2\n")
    assert cpu_has_amx_bf16(tmp_path / "with") and not cpu_has_amx_bf16(tmp_path / "without")
    assert not cpu_has_amx_bf16(tmp_path / "missing")


def test_recipe_errors_name_the_new_keys():
    from tasks.recipe import load_recipe

    with pytest.raises(RecipeError, match="calibration.low"):
        load_recipe("configs/tiny.yaml", ["calibration.low=2"])
    with pytest.raises(RecipeError, match="rl.probe.prompts"):
        load_recipe("configs/tiny.yaml", ["rl.probe.prompts=-1"])


def test_an_rl_set_smaller_than_one_generation_batch_is_refused_by_name():
    from tasks.training.rl import check_generation_batch

    rl = RLSection(
        num_generations=8, per_device_train_batch_size=32, steps_per_generation=2
    )  # 8 prompts a generation batch
    check_generation_batch(8, rl, "rlvr")
    with pytest.raises(ValueError, match=r"rlvr: 7 RL prompts, fewer than one generation batch draws \(8 = "):
        check_generation_batch(7, rl, "rlvr")
