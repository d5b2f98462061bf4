"""SFT and RL stages: each trains in its own process (tasks/train_worker.py) launched from here.

The task owns the process: it streams the worker's output into the run log, kills the whole
process group at the stage's wall-clock limit (Prefect's timeout cannot stop a thread), and turns
a failure into an error that quotes the worker's last lines.
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

from tasks.problem_schema import chat_prompt, read_jsonl, write_jsonl
from tasks.stage_run import PROJECT_ROOT, StageRun, retry_transient, run_logger, stage_cache


class TrainingFailed(RuntimeError):
    pass


def launch_worker(spec: dict[str, Any], workdir: Path, timeout_s: float) -> None:
    """Run ``python -m tasks.train_worker`` on ``spec``; raise TrainingFailed with its tail on failure."""
    spec_path = workdir / "spec.json"
    spec_path.write_text(json.dumps(spec, indent=1))
    log = run_logger()
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tasks.train_worker", str(spec_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True,
    )
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
        raise TrainingFailed(f"{spec['stage']} exceeded its {timeout_s:.0f} s limit and was killed") from None
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


def trainer_args(section: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    args = {name: section[name] for name in names}
    args.update(section.get("trl") or {})
    return args


SFT_ARGS = ("max_steps", "learning_rate", "per_device_train_batch_size", "gradient_accumulation_steps", "max_length", "bf16", "seed")
GRPO_ARGS = ("loss_type", "max_steps", "learning_rate", "num_generations", "per_device_train_batch_size",
             "max_completion_length", "temperature", "beta", "bf16", "seed")


@task(name="sft", retry_condition_fn=retry_transient, retries=1, retry_delay_seconds=10, cache_policy=stage_cache("tasks.train_worker"), persist_result=True)
def train_sft(base_model_id: str, dataset_id: str, sft_cfg: dict) -> str:
    """Cold-start SFT with TRL's SFTTrainer (prompt/completion chat data: loss on the completion)."""
    inputs = {"model": base_model_id, "dataset": dataset_id}
    with StageRun("sft", inputs=inputs, params=sft_cfg, code_modules=("tasks.training", "tasks.train_worker")) as run:
        work = run.staging("work")
        spec = {
            "stage": "sft",
            "model_dir": str(run.input_path("model")),
            "data_path": str(run.input_path("dataset") / "train.jsonl"),
            "output_dir": str(work),
            "trainer_args": trainer_args(sft_cfg, SFT_ARGS),
        }
        started = time.monotonic()
        launch_worker(spec, work, sft_cfg["timeout_s"])
        history = json.loads((work / "log_history.json").read_text())
        series = history_series(history, {"loss": "loss", "grad_norm": "grad_norm", "learning_rate": "learning_rate"})
        losses = [v for _, v in series.get("loss", [])]
        if not losses:
            raise TrainingFailed("SFT logged no loss: the dataset produced no training steps")
        metrics = {"loss_first": losses[0], "loss_last": losses[-1], "steps": len(losses),
                   "seconds": time.monotonic() - started}
        return run.output("checkpoint", work / "model", kind="checkpoint", name="sft", metrics=metrics, series=series)


def build_rl_prompts(problems: list[dict[str, Any]], tokenizer, system_prompt: str, max_prompt_length: int, limit: int | None):
    """RL rows (chat prompt + the problem as JSON); prompts over the length budget are counted, not used."""
    rows, too_long = [], 0
    for problem in problems:
        prompt = chat_prompt(problem, system_prompt)
        length = len(tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=False))
        if length > max_prompt_length:
            too_long += 1
            continue
        rows.append({"problem_id": problem["id"], "prompt": prompt, "problem_json": json.dumps(problem)})
    if limit is not None:
        rows = rows[:limit]
    return rows, too_long


@task(name="grpo", retry_condition_fn=retry_transient, retries=1, retry_delay_seconds=10, cache_policy=stage_cache("tasks.train_worker", "tasks.rewards", "tasks.thinking", "sandbox"), persist_result=True)
def train_grpo(policy_id: str, train_problems_id: str, rl_cfg: dict, sandbox_cfg: dict, system_prompt: str) -> str:
    """RL with TRL's GRPOTrainer (loss_type from config, default dr_grpo) on the Think-Anywhere reward."""
    from transformers import AutoTokenizer

    inputs = {"model": policy_id, "problems": train_problems_id}
    params = {"rl": rl_cfg, "sandbox": sandbox_cfg, "system_prompt": system_prompt}
    with StageRun("grpo", inputs=inputs, params=params, code_modules=("tasks.training", "tasks.train_worker", "tasks.rewards")) as run:
        work = run.staging("work")
        problems = read_jsonl(run.input_path("problems") / "problems.jsonl")
        tokenizer = AutoTokenizer.from_pretrained(run.input_path("model"))
        rows, too_long = build_rl_prompts(problems, tokenizer, system_prompt, rl_cfg["max_prompt_length"], rl_cfg["limit"])
        if not rows:
            raise ValueError(f"no RL prompts: {len(problems)} train problems, {too_long} over max_prompt_length")
        write_jsonl(work / "rl_prompts.jsonl", rows)
        spec = {
            "stage": "grpo",
            "model_dir": str(run.input_path("model")),
            "data_path": str(work / "rl_prompts.jsonl"),
            "output_dir": str(work),
            "trainer_args": trainer_args(rl_cfg, GRPO_ARGS),
            "reward_weights": rl_cfg["reward_weights"],
            "sandbox": sandbox_cfg,
        }
        started = time.monotonic()
        launch_worker(spec, work, rl_cfg["timeout_s"])
        history = json.loads((work / "log_history.json").read_text())
        series = history_series(history, {
            "reward": "reward", "loss": "loss", "reward_correct": "rewards/correct/mean",
            "reward_upfront_think": "rewards/upfront_think/mean", "reward_inline_think": "rewards/inline_think/mean",
            "completion_length": "completions/mean_length", "kl": "kl",
        })
        rewards = [v for _, v in series.get("reward", [])]
        metrics = {"prompts": len(rows), "prompts_too_long": too_long, "steps": len(rewards),
                   "reward_first": rewards[0] if rewards else float("nan"),
                   "reward_last": rewards[-1] if rewards else float("nan"),
                   "seconds": time.monotonic() - started}
        return run.output("checkpoint", work / "model", kind="checkpoint", name="grpo", metrics=metrics, series=series)
