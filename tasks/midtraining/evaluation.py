"""The held-out mid-training evaluation, the CPU-scale analogue of the paper's mid-training table.

Its examples are chunks no stage trained on (``corpus.eval_fraction``), cut at every thought
boundary into (prefix, true suffix). Each model sees the prefix (its last ``max_prompt_length``
tokens, raw text, as in RL mid-training) and continues it twice, greedy:

- **with thinking**: ``<think>`` is prefilled, so every model (the base and the raw-SFT one too)
  writes a thought, closes it and guesses the next segment; scored as RL mid-training's reward
  (0 when the thought is not closed within ``thought_tokens`` + ``max_new_tokens``; otherwise the
  judge's verdict on the guess, cut to ``max_new_tokens`` tokens);
- **without thinking**: an empty ``<think></think>`` is prefilled, so the model continues at once
  for ``max_new_tokens``; the continuation is judged the same way;
- **plain continuation**: nothing is prefilled, as a model never trained on thoughts would be
  used (the empty thought above is text such a model has never seen, and it changes what it
  writes); any thought the model opens on its own is removed (one never closed ends the guess)
  and the rest is judged, cut to ``max_new_tokens``. How often a model opens a thought unprompted
  is reported too.

Every guess gets the same token budget, so a longer guess never wins recall by its length.

The judge is RL mid-training's (``midtraining.rl.reward``: the offline overlap judge, or the
annotator as an LLM judge). Also reported: the perplexity of the true suffix given the prefix
(no thought), pooled over tokens. Every mean has a bootstrap interval over examples.
"""

from __future__ import annotations

import json
import math
from typing import Any

from tasks.intervals import mean_interval
from tasks.midtraining.next_segment import judge_guesses, midtrain_judge_reward, midtraining_rl_rows, split_thought
from tasks.recipe import AnnotatorConfig, MidtrainingEvalSection, RewardSection
from tasks.records import read_jsonl, write_jsonl
from tasks.stage_run import StageRun, stage
from tasks.thinking import THINK_CLOSE, THINK_OPEN, strip_thoughts

EMPTY_THOUGHT = f"{THINK_OPEN}{THINK_CLOSE}"
SUFFIX_TOKENS = 128  # perplexity over at most this many tokens of the true suffix


def pooled_perplexity(nll_sums: list[float], token_counts: list[int]) -> float:
    return math.exp(sum(nll_sums) / max(1, sum(token_counts)))


def perplexity_interval(
    nll_sums: list[float], token_counts: list[int], resamples: int, confidence: float, seed: int
) -> tuple[float, float]:
    """Percentile interval of the pooled perplexity, resampling examples with replacement."""
    from tasks.intervals import unit_interval

    return unit_interval(
        len(nll_sums),
        lambda picks: pooled_perplexity([nll_sums[i] for i in picks], [token_counts[i] for i in picks]),
        resamples,
        confidence,
        seed,
    )


def mean_with_interval(name: str, values: list[float], cfg: MidtrainingEvalSection) -> dict[str, float]:
    low, high = mean_interval(values, cfg.resamples, cfg.confidence, cfg.seed)
    return {name: sum(values) / len(values), f"{name}_ci_low": low, f"{name}_ci_high": high}


def suffix_nll(model, tokenizer, prompt: str, suffix: str) -> tuple[float, int]:
    """(summed negative log-likelihood, tokens) of the true suffix after the prompt."""
    import torch

    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    suffix_ids = tokenizer(suffix, add_special_tokens=False)["input_ids"][:SUFFIX_TOKENS]
    if not suffix_ids:
        return 0.0, 0
    ids = torch.tensor([prompt_ids + suffix_ids], device=model.device)
    with torch.no_grad():
        logits = model(ids).logits[0, len(prompt_ids) - 1 : -1].float()
    nll = torch.nn.functional.cross_entropy(logits, ids[0, len(prompt_ids) :], reduction="sum")
    return float(nll), len(suffix_ids)


def cut_guess(reply: str, tokenizer, max_tokens: int) -> str:
    """The reply with its guess after a closed thought cut to ``max_tokens`` tokens (unchanged when
    the thought never closed: that reply scores 0)."""
    thought, guess = split_thought(reply)
    if thought is None:
        return reply
    ids = tokenizer(guess, add_special_tokens=False)["input_ids"]
    return reply if len(ids) <= max_tokens else reply[: len(reply) - len(guess)] + tokenizer.decode(ids[:max_tokens])


def plain_guess(reply: str, tokenizer, max_tokens: int) -> str:
    """A reply written with nothing prefilled, without the thoughts it opened (one that never
    closes ends it), cut to ``max_tokens`` tokens."""
    text = strip_thoughts(reply)
    if THINK_OPEN in text:
        text = text[: text.index(THINK_OPEN)]
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return text if len(ids) <= max_tokens else tokenizer.decode(ids[:max_tokens])


def evaluate_continuations(
    model_dir,
    examples: list[dict[str, Any]],
    cfg: MidtrainingEvalSection,
    judge: str,
    threshold: float,
    annotator,
    dtype: str,
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """(one row per example, the summary metrics)."""
    from tasks.generation import HFBackend, Sampling

    backend = HFBackend(model_dir, dtype, cfg.batch_size)
    prompts = [example["prompt"] for example in examples]
    with_room = Sampling(max_new_tokens=cfg.max_new_tokens + cfg.thought_tokens, stop_on_code_end=False)
    thinking = [
        cut_guess(THINK_OPEN + replies[0], backend.tokenizer, cfg.max_new_tokens)
        for replies in backend.complete([p + THINK_OPEN for p in prompts], with_room)
    ]
    sampling = Sampling(max_new_tokens=cfg.max_new_tokens, stop_on_code_end=False)
    direct = [replies[0] for replies in backend.complete([p + EMPTY_THOUGHT for p in prompts], sampling)]
    unprompted = [replies[0] for replies in backend.complete(prompts, with_room)]
    plain = [plain_guess(reply, backend.tokenizer, cfg.max_new_tokens) for reply in unprompted]
    prefixes, suffixes = [e["prefix"] for e in examples], [e["suffix"] for e in examples]
    with_thought = midtrain_judge_reward(
        thinking, prefixes, suffixes, judge=judge, threshold=threshold, annotator=annotator
    )
    without = judge_guesses(direct, prefixes, suffixes, judge, threshold, annotator)
    judged_plain = judge_guesses(plain, prefixes, suffixes, judge, threshold, annotator)
    likelihoods = [suffix_nll(backend.model, backend.tokenizer, p, s) for p, s in zip(prompts, suffixes)]
    rows = []
    for index, (example, reply, (nll, tokens)) in enumerate(zip(examples, thinking, likelihoods)):
        thought, _ = split_thought(reply)
        rows.append(
            {
                "chunk_id": example["chunk_id"],
                "boundary": example["boundary"],
                "thinking_reply": reply,
                "direct_reply": direct[index],
                "plain_reply": unprompted[index],
                "plain_guess": plain[index],
                "reward_thinking": with_thought[index],
                "reward_no_thinking": without[index],
                "reward_plain": judged_plain[index],
                "opens_thought_unprompted": THINK_OPEN in unprompted[index],
                "thought_words": len(thought.split()) if thought else 0,
                "suffix_nll": nll,
                "suffix_tokens": tokens,
            }
        )
    nlls, counts = [r["suffix_nll"] for r in rows], [r["suffix_tokens"] for r in rows]
    low, high = perplexity_interval(nlls, counts, cfg.resamples, cfg.confidence, cfg.seed)
    metrics = {
        "examples": len(rows),
        **mean_with_interval("judge_reward_thinking", with_thought, cfg),
        **mean_with_interval("judge_reward_no_thinking", without, cfg),
        **mean_with_interval("judge_reward_plain", judged_plain, cfg),
        "opens_thought_unprompted": sum(r["opens_thought_unprompted"] for r in rows) / len(rows),
        "closes_thought": sum(1 for r in rows if split_thought(r["thinking_reply"])[0] is not None) / len(rows),
        "thought_words": sum(r["thought_words"] for r in rows) / len(rows),
        "suffix_perplexity": pooled_perplexity(nlls, counts),
        "suffix_perplexity_ci_low": low,
        "suffix_perplexity_ci_high": high,
    }
    return rows, metrics


def held_out_examples(
    rows: list[dict[str, Any]], tokenizer, max_prompt_length: int, limit: int | None
) -> list[dict[str, Any]]:
    """The held-out (prefix, suffix) pairs with the prompt each model sees (the prefix's last tokens)."""
    prompts, _ = midtraining_rl_rows(rows, tokenizer, max_prompt_length, limit)
    return [{**row, "prompt": prompt["prompt"]} for row, prompt in zip(rows[:limit] if limit else rows, prompts)]


@stage(
    "midtraining_eval",
    inputs={"model": "model_id", "held_out": "held_out_id", "judge": "judge_model_id"},
    retries=1,
)
def evaluate_midtraining(
    model_id: str,
    held_out_id: str,
    cfg: MidtrainingEvalSection,
    reward: RewardSection,
    max_prompt_length: int,
    judge_model_id: str | None,
    annotator: AnnotatorConfig | None,
    dtype: str,
) -> str:
    """A report: report.json (judge reward with and without thinking, suffix perplexity, each with
    an interval) and rows.jsonl (every example's two replies and scores). ``reward`` and
    ``max_prompt_length`` are RL mid-training's (the same judge, the same prefixes); ``annotator``
    and ``judge_model_id`` only when that judge is an LLM."""
    from transformers import AutoTokenizer

    from tasks.annotators import make_annotator

    judged_by_llm = reward.judge == "llm"
    if judged_by_llm and annotator is None:
        raise ValueError("midtraining.rl.reward.judge is llm: the stage needs the annotator that judges")
    with StageRun() as run:
        rows = read_jsonl(run.input_path("held_out") / "train.jsonl")
        if not rows:
            raise ValueError(f"the held-out set {held_out_id} is empty: set corpus.eval_fraction > 0")
        tokenizer = AutoTokenizer.from_pretrained(run.input_path("model"))
        examples = held_out_examples(rows, tokenizer, max_prompt_length, cfg.limit)
        judge_client = None
        if judged_by_llm:
            judge_dir = run.input_path("judge") if "judge" in run.inputs else None
            judge_client = make_annotator(annotator, judge_dir, run.store.home / "cache" / "annotator", dtype)
        scored, metrics = evaluate_continuations(
            run.input_path("model"), examples, cfg, reward.judge, reward.threshold, judge_client, dtype
        )
        run.log.info("mid-training eval of %s on %d held-out examples: %s", model_id, len(scored), json.dumps(metrics))
        staged = run.staging("report")
        write_jsonl(staged / "rows.jsonl", scored)
        (staged / "report.json").write_text(
            json.dumps({"model": model_id, "held_out": held_out_id, "judge": reward.judge, **metrics}, indent=1)
        )
        return run.output(
            "report",
            staged,
            kind="report",
            name="midtraining-evaluation",
            metadata={"model": model_id},
            metrics=metrics,
        )
