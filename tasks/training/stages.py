"""SFT and RL stages: each trains in its own process, ``accelerate launch -m tasks.training.worker``.

The task owns the process: it streams the worker's output into the run log, kills the whole
process group at the stage's wall-clock limit (Prefect's timeout cannot stop a thread), and turns
a failure into an error that quotes the worker's last lines. The worker trains in a folder named
by the run's inputs, params and code (``StageRun.resumable_dir``) that survives a failed attempt,
so a retry, or a re-run after the process was killed, resumes from the last complete checkpoint.

Per-step metrics (loss, reward mean and per term, KL, completion length, the share of completions
with an inline thought, groups dropped) go to DuckDB's ``metrics`` table; RL also draws its reward
and think-share curves as PNGs, registered as an artifact and linked from a Prefect markdown
artifact.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from prefect import task

from tasks.recipe import AnnotatorConfig, MidtrainingRLSection, RewardSection, RLSection, SandboxSection, SFTSection
from tasks.records import chat_prompt, read_jsonl, write_jsonl
from tasks.stage_run import PROJECT_ROOT, StageRun, retry_transient, run_logger, stage_cache
from tasks.thinking import THINK_OPEN


class TrainingFailed(RuntimeError):
    pass


def accelerate_config(name: str) -> Path:
    """``auto``: one CPU process, or one GPU when CUDA is present; else a path (relative to the project)."""
    if name == "auto":
        import torch

        name = "configs/accelerate/single_gpu.yaml" if torch.cuda.is_available() else "configs/accelerate/cpu.yaml"
    path = Path(name) if Path(name).is_absolute() else PROJECT_ROOT / name
    if not path.exists():
        raise ValueError(f"accelerate config {path} does not exist")
    return path


def worker_command(spec_path: Path, config: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(config),
        "-m",
        "tasks.training.worker",
        str(spec_path),
    ]


def launch_worker(spec: dict[str, Any], workdir: Path, timeout_s: float, config: Path) -> None:
    """Run the worker on ``spec``; raise TrainingFailed with its tail on failure or at the time limit."""
    spec_path = workdir / "spec.json"
    spec_path.write_text(json.dumps(spec, indent=1))
    log = run_logger()
    # fixed thread counts (no dynamic adjustment to the machine's load): same recipe, same numbers
    env = {
        "OMP_DYNAMIC": "FALSE",
        "MKL_DYNAMIC": "FALSE",
        **os.environ,
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONUNBUFFERED": "1",
    }
    env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    proc = subprocess.Popen(
        worker_command(spec_path, config),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
        cwd=PROJECT_ROOT,
    )
    (workdir / "launcher.pid").write_text(str(proc.pid))
    tail: deque[str] = deque(maxlen=40)

    def pump() -> None:
        for line in proc.stdout:
            line = line.rstrip()
            tail.append(line)
            if line and "it/s]" not in line and "Loading weights" not in line:
                log.info("[%s] %s", spec["stage"], line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise TrainingFailed(
            f"{spec['stage']} exceeded its {timeout_s:.0f} s limit and was killed; "
            "a re-run resumes from its last complete checkpoint"
        ) from None
    finally:
        reader.join(timeout=5)
    if proc.returncode != 0:
        raise TrainingFailed(f"{spec['stage']} worker exited with {proc.returncode}:\n" + "\n".join(tail))


def history_series(log_history: list[dict[str, Any]], keys: dict[str, str]) -> dict[str, list[tuple[int, float]]]:
    """Per-step series from TRL's log history: {our name: [(step, value)]} for the keys present."""
    series: dict[str, list[tuple[int, float]]] = {}
    for entry in log_history:
        step = entry.get("step")
        for ours, theirs in keys.items():
            value = entry.get(theirs)
            if step is not None and isinstance(value, (int, float)) and math.isfinite(value):
                series.setdefault(ours, []).append((int(step), float(value)))
    return series


STAGE_FILES = ("tasks.training.worker",)  # the process each stage launches: part of the stages' code version


def run_worker(
    run: StageRun, spec: dict[str, Any], section: SFTSection | RLSection
) -> tuple[Path, list[dict[str, Any]], dict[str, float]]:
    """Launch the worker in the run's resumable folder with the section as JSON (the worker passes
    the fields TRL's config knows straight through); (folder, log history, timing metrics)."""
    work = run.resumable_dir()
    spec = {**spec, "output_dir": str(work), "section": section.to_json()}
    started = time.monotonic()
    launch_worker(spec, work, section.timeout_s, accelerate_config(section.accelerate_config))
    history = json.loads((work / "log_history.json").read_text())
    resumed = json.loads((work / "resume.json").read_text())["resumed_from_step"]
    if resumed:
        run.log.info("%s resumed from step %d", spec["stage"], resumed)
    return work, history, {"seconds": time.monotonic() - started, "resumed_from_step": resumed}


SFT_SERIES = {"loss": "loss", "grad_norm": "grad_norm", "learning_rate": "learning_rate"}


@task(
    name="sft",
    tags=["gpu"],
    retry_condition_fn=retry_transient,
    retries=1,
    retry_delay_seconds=10,
    cache_policy=stage_cache(),
    persist_result=True,
)
def train_sft(base_model_id: str, dataset_id: str, sft: SFTSection, data_format: str = "chat") -> str:
    """SFT with TRL's SFTTrainer: ``chat`` data (prompt/completion: loss on the completion only) or
    ``text`` (plain language modelling); full, LoRA, or only the think-token rows (``new_rows``)."""
    inputs = {"model": base_model_id, "dataset": dataset_id}
    params = {**sft.to_json(), "data_format": data_format}
    with StageRun("sft", inputs=inputs, params=params) as run:
        spec = {
            "stage": "sft",
            "kind": "sft",
            "model_dir": str(run.input_path("model")),
            "data_format": data_format,
            "data_path": str(run.input_path("dataset") / "train.jsonl"),
        }
        work, history, timing = run_worker(run, spec, sft)
        series = history_series(history, SFT_SERIES)
        losses = [v for _, v in series.get("loss", [])]
        if not losses:
            raise TrainingFailed("SFT logged no loss: the dataset produced no training steps")
        metrics = {"loss_first": losses[0], "loss_last": losses[-1], "steps": len(losses), **timing}
        name = {"new_rows": "sft-think-token-rows", "lora": "sft-lora"}.get(sft.train, "sft")
        return run.output("checkpoint", work / "model", kind="checkpoint", name=name, metrics=metrics, series=series)


@task(name="add-think-tokens", cache_policy=stage_cache(), persist_result=True)
def add_think_tokens_to_model(base_model_id: str) -> str:
    """Think-Anywhere*: the base model with the thinking tags as tokens of their own (rows initialised
    from related tokens, tasks/training/think_tokens.py); their ids in ``think_tokens.json``."""
    from tasks.models import load_for_inference
    from tasks.training.think_tokens import add_think_tokens, write_record

    with StageRun("add_think_tokens", inputs={"model": base_model_id}, params={}) as run:
        tokenizer, model = load_for_inference(run.input_path("model"), "float32")
        ids = add_think_tokens(model, tokenizer)
        staged = run.staging("model")
        model.save_pretrained(staged)
        tokenizer.save_pretrained(staged)
        write_record(staged, ids)
        run.log.info("think tokens added: %s", ids)
        return run.output(
            "checkpoint", staged, kind="checkpoint", name="base+think-tokens", metrics={"tokens_added": len(ids)}
        )


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
    import random
    import statistics

    quarter = len(values) // 4
    if quarter < 1:
        return {}
    first, last = values[:quarter], values[-quarter:]
    rng = random.Random(seed)
    gains = sorted(
        statistics.fmean(rng.choices(last, k=quarter)) - statistics.fmean(rng.choices(first, k=quarter))
        for _ in range(resamples)
    )
    tail = (1 - confidence) / 2
    return {
        "first_quarter": statistics.fmean(first),
        "last_quarter": statistics.fmean(last),
        "gain": statistics.fmean(last) - statistics.fmean(first),
        "gain_ci_low": gains[int(tail * resamples)],
        "gain_ci_high": gains[min(resamples - 1, int((1 - tail) * resamples))],
    }


NO_SIGNAL_WARNING = 0.5  # the run summary warns when more than this share of groups had all-equal rewards


def rl_metrics(series: dict[str, list[tuple[int, float]]], prompts: int, too_long: int) -> dict[str, float]:
    """The RL stage's headline numbers: rewards first/last and their quarter-on-quarter gain, the
    share of groups with no signal and of truncated completions, the inline-think share."""
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
    if "reward_inline_think" in series:
        series["inline_think_rate"] = list(series["reward_inline_think"])
        metrics["inline_think_rate"] = series["inline_think_rate"][-1][1]
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
    from tasks.plots import publish_curves

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
    series = history_series(history, rl_series_keys(rl.reward))
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
    publish_curves(run, checkpoint, series, files=(work / "probe.jsonl",))  # every probe completion's score, per step
    return checkpoint


@task(
    name="grpo",
    tags=["gpu"],
    retry_condition_fn=retry_transient,
    retries=1,
    retry_delay_seconds=10,
    cache_policy=stage_cache(),
    persist_result=True,
)
def train_grpo(
    policy_id: str, train_problems_id: str, rl: RLSection, sandbox: SandboxSection, system_prompt: str
) -> str:
    """RL with TRL's GRPOTrainer (loss_type from config, default dr_grpo) on code problems, reward
    from the registry (default ``think_anywhere``)."""
    from transformers import AutoTokenizer

    inputs = {"model": policy_id, "problems": train_problems_id}
    params = {"rl": rl.to_json(), "sandbox": sandbox.to_json(), "system_prompt": system_prompt}
    with StageRun("grpo", inputs=inputs, params=params) as run:
        from tasks.problems.calibration import rl_candidates

        # the RL order (rl.sources, seeded shuffle): the one calibration measured its candidates in
        problems = rl_candidates(read_jsonl(run.input_path("problems") / "problems.jsonl"), rl, None)
        tokenizer = AutoTokenizer.from_pretrained(run.input_path("model"))
        rows, too_long = build_rl_prompts(problems, tokenizer, system_prompt, rl.max_prompt_length, rl.limit)
        return run_grpo(run, rows, too_long, rl, sandbox)


# -- Thinking Mid-training: RL on the corpus's RL half, RLVR on math ------------------------------


def midtraining_rl_rows(
    examples: list[dict[str, Any]], tokenizer, max_prompt_length: int, limit: int | None, opening: str = ""
):
    """RL rows from the corpus's RL half: the prompt is the prefix's last ``max_prompt_length``
    tokens (raw text, no chat template) followed by ``opening`` (``<think>`` when the thought is
    prefilled); ``prefix`` and ``suffix`` go to the judge. (rows, trimmed)."""
    rows, trimmed = [], 0
    for example in examples[:limit] if limit else examples:
        ids = tokenizer(example["prefix"], add_special_tokens=False)["input_ids"]
        if len(ids) > max_prompt_length:
            trimmed += 1
        rows.append(
            {
                "prompt": tokenizer.decode(ids[-max_prompt_length:]) + opening,
                "prefix": example["prefix"],
                "suffix": example["suffix"],
            }
        )
    return rows, trimmed


@task(
    name="midtraining-rl",
    tags=["gpu"],
    retry_condition_fn=retry_transient,
    retries=1,
    retry_delay_seconds=10,
    cache_policy=stage_cache(),
    persist_result=True,
)
def train_midtraining_rl(
    policy_id: str, rl_half_id: str, rl: MidtrainingRLSection, judge_model_id: str | None, annotator: AnnotatorConfig
) -> str:
    """RL mid-training: the model sees a prefix, writes ``<think>…</think>`` and the next segment; the
    ``midtrain_judge`` reward (offline overlap, or the recipe's annotator as an LLM judge)."""
    from transformers import AutoTokenizer

    judged_by_llm = rl.reward.judge == "llm"
    inputs = {
        "model": policy_id,
        "examples": rl_half_id,
        **({"judge": judge_model_id} if judged_by_llm and judge_model_id else {}),
    }
    params = {"rl": rl.to_json(), **({"judge": annotator.cache_key()} if judged_by_llm else {})}
    with StageRun("midtrain_grpo", inputs=inputs, params=params) as run:
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
                "annotator_dir": str(run.input_path("judge")) if "judge" in inputs else None,
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


@task(
    name="math-rl",
    tags=["gpu"],
    retry_condition_fn=retry_transient,
    retries=1,
    retry_delay_seconds=10,
    cache_policy=stage_cache(),
    persist_result=True,
)
def train_math_rl(policy_id: str, math_problems_id: str, rl: RLSection, system_prompt: str) -> str:
    """RLVR post-training on math problems with the ``math`` reward (math-verify against the answer)."""
    inputs = {"model": policy_id, "problems": math_problems_id}
    with StageRun("math_grpo", inputs=inputs, params={"rl": rl.to_json(), "system_prompt": system_prompt}) as run:
        problems = read_jsonl(run.input_path("problems") / "problems.jsonl")
        return run_grpo(run, math_rows(problems, system_prompt, rl.limit), 0, rl, None)
