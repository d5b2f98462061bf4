"""The RL stages: GRPO on code problems, RL mid-training on the corpus (judged), RLVR on math. Each
launches the worker process with TRL's GRPOTrainer (tasks/training/grpo_worker.py).

Per-step metrics (loss, reward mean and per term, KL, completion length, the share of completions
with an inline thought, groups dropped) go to DuckDB's ``metrics`` table; the reward, probe,
think-share, signal and loss curves are drawn as PNGs and registered as an artifact beside the
checkpoint (the flow's stage artifact shows them in the Prefect UI).
"""

from __future__ import annotations

import json
from typing import Any

from tasks.midtraining.next_segment import midtraining_rl_rows
from tasks.recipe import AnnotatorConfig, MidtrainingRLSection, RewardSection, RLSection, SandboxSection
from tasks.records import chat_prompt, read_jsonl, write_jsonl
from tasks.stage_run import StageRun, stage
from tasks.thinking import THINK_OPEN
from tasks.training.launch import run_worker, trainer_series

STAGE_FILES = (
    "tasks.training.worker",
    "tasks.training.grpo_worker",
)  # the process the stages launch: part of their code version


def build_rl_prompts(
    problems: list[dict[str, Any]],
    tokenizer,
    system_prompt: str,
    max_prompt_length: int,
    limit: int | None,
    shuffle_seed: int | None = None,
):
    """RL rows (chat prompt + the problem as JSON), in a seeded shuffled order when ``shuffle_seed`` is
    set (so ``limit`` draws from every source, not the first file's); prompts over the length budget
    are counted, not used."""
    import random

    if shuffle_seed is not None:
        problems = sorted(problems, key=lambda p: p["id"])
        random.Random(shuffle_seed).shuffle(problems)
    rows, too_long = [], 0
    for problem in problems:
        prompt = chat_prompt(problem, system_prompt)
        length = len(
            tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=False)
        )
        if length > max_prompt_length:
            too_long += 1
            continue
        rows.append({"problem_id": problem["id"], "prompt": prompt, "problem_json": json.dumps(problem)})
    if limit is not None:
        rows = rows[:limit]
    return rows, too_long


def rl_curves(reward: RewardSection):
    """The RL plots with every registered reward term drawn where its registration says (and on the
    probe plot), after the recipe's term modules are imported."""
    from tasks.plots import CURVES, with_series
    from tasks.training.reward_terms import TERMS, load_term_modules

    load_term_modules(reward.modules)
    extra: dict[str, list[str]] = {}
    for term in TERMS.values():
        for file in term.plots:
            extra.setdefault(file, []).append(term.series)
        extra.setdefault("probe.png", []).append(f"probe_{term.name}")
    return with_series(CURVES, extra)


def summarised_terms(series: dict[str, list[tuple[int, float]]]) -> dict[str, float]:
    """The last logged value of each reward term whose registration asks the summary to show it."""
    from tasks.training.reward_terms import TERMS

    return {
        f"{term.series}_last": series[term.series][-1][1]
        for term in TERMS.values()
        if term.summarised and series.get(term.series)
    }


def rl_series_keys(reward: RewardSection) -> dict[str, str]:
    from tasks.training.rewards import reward_functions

    keys = {
        "reward": "reward",
        "loss": "loss",
        "kl": "kl",
        "completion_length": "completions/mean_length",
        "groups_dropped": "groups_dropped",
        "reward_std": "reward_std",
        "learning_rate": "learning_rate",
        "no_signal_groups": "frac_reward_zero_std",
        "truncated": "completions/clipped_ratio",
    }
    for term in reward_functions(reward.name, {**reward.to_json(), "judge": "overlap"}, None):
        keys[f"reward_{term}"] = f"rewards/{term}/mean"
    return keys


def quarter_gain(
    values: list[float], resamples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> dict[str, float]:
    """Mean of the last quarter of ``values`` minus the mean of the first, with a bootstrap interval
    (each quarter resampled on its own); empty when there are fewer than 4 values."""
    import statistics

    from tasks.intervals import stratified_difference_interval

    quarter = len(values) // 4
    if quarter < 1:
        return {}
    first, last = values[:quarter], values[-quarter:]
    low, high = stratified_difference_interval([(first, last)], resamples, confidence, seed)
    return {
        "first_quarter": statistics.fmean(first),
        "last_quarter": statistics.fmean(last),
        "gain": statistics.fmean(last) - statistics.fmean(first),
        "gain_ci_low": low,
        "gain_ci_high": high,
    }


NO_SIGNAL_WARNING = 0.5  # the run summary warns when more than this share of groups had all-equal rewards


def rl_metrics(series: dict[str, list[tuple[int, float]]], prompts: int, too_long: int) -> dict[str, float]:
    """The RL stage's headline numbers: rewards first/last and their quarter-on-quarter gain, the
    share of groups with no signal and of truncated completions, and the last value of each reward term
    registered as summarised (the inline-think share among them)."""
    import statistics

    rewards = [v for _, v in series.get("reward", [])]
    metrics = {
        "prompts": prompts,
        "prompts_too_long": too_long,
        "steps": len(rewards),
        "reward_first": rewards[0] if rewards else float("nan"),
        "reward_last": rewards[-1] if rewards else float("nan"),
        "groups_dropped": sum(v for _, v in series.get("groups_dropped", [])),
    }
    metrics.update({f"reward_{name}": value for name, value in quarter_gain(rewards).items()})
    for name in ("no_signal_groups", "truncated"):
        if series.get(name):
            metrics[f"{name}_mean"] = statistics.fmean(v for _, v in series[name])
    metrics.update(summarised_terms(series))  # e.g. reward_inline_think_last: the share with an inline block
    return metrics


def rl_warnings(metrics: dict[str, float]) -> list[str]:
    """What a reader of the run summary must know about an RL stage's signal."""
    warnings = []
    if metrics.get("no_signal_groups_mean", 0.0) > NO_SIGNAL_WARNING:
        warnings.append(
            f"{metrics['no_signal_groups_mean']:.0%} of GRPO groups had all-equal rewards (no learning signal); "
            "raise num_generations or the temperature, or choose problems the policy solves sometimes"
        )
    if metrics.get("truncated_mean", 0.0) > NO_SIGNAL_WARNING:
        warnings.append(f"{metrics['truncated_mean']:.0%} of completions hit max_completion_length")
    return warnings


def check_generation_batch(prompts: int, rl: RLSection, stage: str) -> None:
    """Enough distinct prompts for one generation batch: with fewer, TRL stops at step 0 with a warning."""
    needed = rl.completions_per_generation() // rl.num_generations
    if prompts < needed:
        raise ValueError(
            f"{stage}: {prompts} RL prompts, fewer than one generation batch draws ({needed} = "
            f"per_device_train_batch_size {rl.per_device_train_batch_size} x steps_per_generation / num_generations "
            f"{rl.num_generations}); give RL more problems (a wider calibration band, a higher calibration.limit) or "
            "a smaller batch"
        )


def run_grpo(
    run: StageRun,
    rows: list[dict[str, Any]],
    too_long: int,
    rl: RLSection,
    sandbox: SandboxSection | None,
    extra: dict | None = None,
) -> str:
    """Launch GRPO on ``rows`` (prompt + the reward's columns), record metrics and curves; the checkpoint id."""
    from tasks.plots import save_curves

    if not rows:
        raise ValueError(f"no RL prompts ({too_long} over max_prompt_length)")
    check_generation_batch(len(rows), rl, run.stage)
    data = run.staging("prompts")
    write_jsonl(data / "rl_prompts.jsonl", rows)
    spec = {
        "stage": run.stage,
        "kind": "grpo",
        "model_dir": str(run.input_path("model")),
        "data_path": str(data / "rl_prompts.jsonl"),
        "reward": {**rl.reward.to_json(), **(extra or {})},
        "sandbox": sandbox.to_json() if sandbox else {},
    }
    if rl.probe.prompts:  # the first rows of the (seeded) RL order, the same at every probe step
        write_jsonl(data / "probe_prompts.jsonl", rows[: rl.probe.prompts])
        spec["probe_path"] = str(data / "probe_prompts.jsonl")
    work, history, timing = run_worker(run, spec, rl)
    series = trainer_series(run, history, rl_series_keys(rl.reward))
    metrics = {**rl_metrics(series, len(rows), too_long), **timing}
    if (work / "probe.jsonl").exists():
        from tasks.training.probe import probe_trend

        probe_series, trend = probe_trend(read_jsonl(work / "probe.jsonl"))
        series.update(probe_series)
        metrics.update({f"probe_reward_{name}": value for name, value in trend.items()})
        if trend:
            run.log.info(
                "%s: probe-set reward %.3f -> %.3f (first to last quarter of %d probe points), gain %+.3f "
                "[%+.3f, %+.3f] on this probe set, [%+.3f, %+.3f] for prompts like these",
                run.stage,
                trend["first_quarter"],
                trend["last_quarter"],
                trend["points"],
                trend["gain"],
                trend["gain_ci_low"],
                trend["gain_ci_high"],
                trend["gain_ci_low_prompts"],
                trend["gain_ci_high_prompts"],
            )
    for warning in rl_warnings(metrics):
        run.log.warning("%s: %s", run.stage, warning)
    checkpoint = run.output(
        "checkpoint", work / "model", kind="checkpoint", name=run.stage, metrics=metrics, series=series
    )
    save_curves(
        run, checkpoint, series, files=(work / "probe.jsonl",), curves=rl_curves(rl.reward)
    )  # every probe completion's score, per step
    return checkpoint


@stage("grpo", inputs={"model": "policy_id", "problems": "train_problems_id"}, retries=1, gpu=True)
def train_grpo(
    policy_id: str, train_problems_id: str, rl: RLSection, sandbox: SandboxSection, system_prompt: str
) -> str:
    """RL with TRL's GRPOTrainer (loss_type from config, default dr_grpo) on code problems, reward
    from the registry (default ``think_anywhere``)."""
    from transformers import AutoTokenizer

    with StageRun() as run:
        from tasks.problems.calibration import rl_candidates

        # the RL order (rl.sources, seeded shuffle): the one calibration measured its candidates in
        problems = rl_candidates(read_jsonl(run.input_path("problems") / "problems.jsonl"), rl, None)
        tokenizer = AutoTokenizer.from_pretrained(run.input_path("model"))
        rows, too_long = build_rl_prompts(problems, tokenizer, system_prompt, rl.max_prompt_length, rl.limit)
        return run_grpo(run, rows, too_long, rl, sandbox)


# -- Thinking Mid-training: RL on the corpus's RL half, RLVR on math ------------------------------


@stage(
    "midtraining_rl",
    inputs={"model": "policy_id", "examples": "rl_half_id", "judge": "judge_model_id"},
    retries=1,
    gpu=True,
)
def train_midtraining_rl(
    policy_id: str,
    rl_half_id: str,
    rl: MidtrainingRLSection,
    judge_model_id: str | None,
    annotator: AnnotatorConfig | None,
) -> str:
    """RL mid-training: the model sees a prefix, writes ``<think>…</think>`` and the next segment; the
    ``midtrain_judge`` reward (offline overlap, or the recipe's annotator as an LLM judge: then, and
    only then, ``annotator`` and ``judge_model_id`` are given)."""
    from transformers import AutoTokenizer

    judged_by_llm = rl.reward.judge == "llm"
    if judged_by_llm and annotator is None:
        raise ValueError("midtraining.rl.reward.judge is llm: the stage needs the annotator that judges")
    with StageRun() as run:
        tokenizer = AutoTokenizer.from_pretrained(run.input_path("model"))
        examples = read_jsonl(run.input_path("examples") / "train.jsonl")
        rows, trimmed = midtraining_rl_rows(
            examples, tokenizer, rl.max_prompt_length, rl.limit, THINK_OPEN if rl.prefill_think else ""
        )
        run.log.info(
            "%d RL examples (%d prefixes trimmed to their last %d tokens)", len(rows), trimmed, rl.max_prompt_length
        )
        judge = (
            {
                "annotator": annotator.to_json(),
                "annotator_dir": str(run.input_path("judge")) if "judge" in run.inputs else None,
            }
            if judged_by_llm
            else {}
        )
        return run_grpo(run, rows, 0, rl, None, extra={**judge, "prefill_think": rl.prefill_think})


MATH_INSTRUCTION = "Solve the problem. Think first, then give the final answer in \\boxed{}."


def math_rows(problems: list[dict[str, Any]], system_prompt: str, limit: int | None) -> list[dict[str, Any]]:
    rows = [
        {
            "prompt": [
                {"role": "system", "content": system_prompt},
                {"role": "user", "content": f"{p['question']}\n\n{MATH_INSTRUCTION}"},
            ],
            "answer": p["answer"],
        }
        for p in problems
    ]
    return rows[:limit] if limit else rows


@stage("math_rl", inputs={"model": "policy_id", "problems": "math_problems_id"}, retries=1, gpu=True)
def train_math_rl(policy_id: str, math_problems_id: str, rl: RLSection, system_prompt: str) -> str:
    """RLVR post-training on math problems with the ``math`` reward (math-verify against the answer)."""
    with StageRun() as run:
        problems = read_jsonl(run.input_path("problems") / "problems.jsonl")
        return run_grpo(run, math_rows(problems, system_prompt, rl.limit), 0, rl, None)
