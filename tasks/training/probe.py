"""A fixed probe set for RL: the same prompts sampled and scored at fixed steps, so a reward trend
says what the policy learnt rather than which problems a step happened to draw.

Inside the training worker, ``probe_callback`` samples ``probe.samples`` completions for each probe
prompt at step 0 and every ``probe.every`` optimizer steps (and at the last), with the RL
temperature, completion cap and stop rule and a fixed seed (the training RNG is left untouched), scores them
with the run's own reward terms and appends one row per completion (its scores and its text) to ``probe.jsonl``. A resumed
run skips the steps already there. ``probe_trend`` reads the file in the stage: per step the
reward and each term, and the last quarter of the probe points minus the first, paired by prompt,
with two bootstrap intervals: one for this probe set (completions resampled within each
prompt) and one for prompts like these (prompts resampled).
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any


def probe_steps(max_steps: int, every: int) -> list[int]:
    """0, every, 2·every, … and the last step."""
    return sorted(set(range(0, max_steps + 1, every)) | {max_steps})


def score_completions(
    terms: dict[str, tuple[Callable, float]], completions: list[str], columns: dict[str, list[Any]]
) -> list[dict]:
    """Each completion's terms and their weighted sum, with the run's reward functions."""
    scores = {name: function(completions, **columns) for name, (function, _) in terms.items()}
    rows = []
    for index in range(len(completions)):
        row = {name: float(values[index]) for name, values in scores.items()}
        row["reward"] = sum(weight * row[name] for name, (_, weight) in terms.items())
        rows.append(row)
    return rows


def probe_callback(
    rows: list[dict[str, Any]],
    terms: dict[str, tuple[Callable, float]],
    tokenizer,
    section: dict[str, Any],
    out_path: Path,
    bf16: bool,
):
    """A TrainerCallback that samples and scores the probe prompts at the probe steps."""
    import torch
    from transformers import TrainerCallback

    probe = section["probe"]
    done = {json.loads(line)["step"] for line in out_path.read_text().splitlines()} if out_path.exists() else set()
    # a conversation gets the chat template; a plain-text prompt (RL mid-training's prefix) is sampled as it is, as TRL does
    texts = [
        row["prompt"]
        if isinstance(row["prompt"], str)
        else tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=False)
        for row in rows
    ]
    columns = {key: [row[key] for row in rows for _ in range(probe["samples"])] for key in rows[0] if key != "prompt"}

    def sample(model, step: int) -> None:
        was_training = model.training
        model.eval()
        completions = []
        device = next(model.parameters()).device
        with (
            torch.random.fork_rng(devices=[] if device.type == "cpu" else [device]),
            torch.no_grad(),
            torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16),
        ):
            torch.manual_seed(probe["seed"])
            for start in range(0, len(texts), probe["batch_prompts"]):
                batch = tokenizer(
                    texts[start : start + probe["batch_prompts"]],
                    return_tensors="pt",
                    padding=True,
                    add_special_tokens=False,
                ).to(device)
                out = model.generate(
                    **batch,
                    do_sample=True,
                    temperature=section["temperature"],
                    top_k=0,
                    top_p=1.0,
                    max_new_tokens=section["max_completion_length"],
                    num_return_sequences=probe["samples"],
                    pad_token_id=tokenizer.pad_token_id,
                )
                completions += tokenizer.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
        if was_training:
            model.train()
        scored = score_completions(terms, completions, columns)
        with open(out_path, "a") as handle:
            for index, row in enumerate(scored):
                handle.write(
                    json.dumps(
                        {
                            "step": step,
                            "prompt": index // probe["samples"],
                            "sample": index % probe["samples"],
                            **row,
                            "completion": completions[index],
                        }
                    )
                    + "\n"
                )
        mean = statistics.fmean(r["reward"] for r in scored)
        print(f"thinkflow: probe at step {step}: reward {mean:.3f} over {len(scored)} completions", flush=True)
        done.add(step)

    class ProbeCallback(TrainerCallback):
        def _maybe(self, state, model):
            steps = probe_steps(state.max_steps, probe["every"])
            if state.global_step in steps and state.global_step not in done and model is not None:
                sample(model, state.global_step)

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            self._maybe(state, model)

        def on_step_end(self, args, state, control, model=None, **kwargs):
            self._maybe(state, model)

    return ProbeCallback()


def probe_trend(
    rows: list[dict[str, Any]], resamples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> tuple[dict[str, list[tuple[int, float]]], dict[str, float]]:
    """(series, trend) from probe rows: per step the mean reward and terms (``probe_reward``,
    ``probe_<term>``); the trend is the last quarter of probe points minus the first (at least one
    point each; empty with fewer than 2 points), per prompt, averaged over prompts.

    Two intervals, because they answer two questions. ``gain_ci_low/high``: did the policy's reward
    on *this* probe set rise? The prompts are fixed by design, so the only chance is which
    completions were sampled: each prompt's completions are resampled within each end (a stratified
    bootstrap). ``gain_ci_low/high_prompts``: would prompts like these rise? Prompts are resampled,
    so how differently RL moves each problem counts as noise too (the held-out evaluation answers
    this question with far more problems)."""
    by_step: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_step[row["step"]].append(row)
    steps = sorted(by_step)
    names = [k for k in rows[0] if k not in ("step", "prompt", "sample", "completion")] if rows else []
    series = {
        f"probe_{name}": [(step, statistics.fmean(r[name] for r in by_step[step])) for step in steps] for name in names
    }
    if len(steps) < 2:
        return series, {}
    quarter = max(1, len(steps) // 4)
    first, last = set(steps[:quarter]), set(steps[-quarter:])
    ends: dict[int, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for row in rows:
        if row["step"] in first:
            ends[row["prompt"]][0].append(row["reward"])
        if row["step"] in last:
            ends[row["prompt"]][1].append(row["reward"])
    prompts = [ends[p] for p in sorted(ends)]
    gains = [statistics.fmean(after) - statistics.fmean(before) for before, after in prompts]

    from tasks.intervals import mean_interval, stratified_difference_interval  # over completions; over prompts

    fixed_low, fixed_high = stratified_difference_interval(prompts, resamples, confidence, seed)
    prompts_low, prompts_high = mean_interval(gains, resamples, confidence, seed)
    trend = {
        "first_quarter": statistics.fmean(r["reward"] for s in sorted(first) for r in by_step[s]),
        "last_quarter": statistics.fmean(r["reward"] for s in sorted(last) for r in by_step[s]),
        "gain": statistics.fmean(gains),
        "gain_ci_low": fixed_low,
        "gain_ci_high": fixed_high,
        "gain_ci_low_prompts": prompts_low,
        "gain_ci_high_prompts": prompts_high,
        "points": len(steps),
        "prompts": len(gains),
    }
    return series, trend
