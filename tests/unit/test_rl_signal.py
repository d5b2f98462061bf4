"""What the RL stage measures and controls about its own signal: the reward's quarter-on-quarter
gain, the warnings of a run with no signal, the RL prompt order, rollouts that end at the code."""

import pytest

from tasks.training.rl import build_rl_prompts, quarter_gain, rl_metrics, rl_warnings


def test_quarter_gain_and_its_interval():
    rising = [0.1, 0.12, 0.11, 0.2, 0.25, 0.3, 0.4, 0.42]
    gain = quarter_gain(rising)
    assert gain["first_quarter"] == pytest.approx(0.11) and gain["last_quarter"] == pytest.approx(0.41)
    assert gain["gain"] == pytest.approx(0.30) and 0 < gain["gain_ci_low"] <= 0.30 <= gain["gain_ci_high"]
    flat = quarter_gain([0.1, 0.3, 0.1, 0.3, 0.1, 0.3, 0.1, 0.3])
    assert flat["gain_ci_low"] < 0 < flat["gain_ci_high"]
    assert quarter_gain([0.1, 0.2, 0.3]) == {}  # fewer than four steps: no quarters


def test_rl_metrics_and_the_warning_when_most_groups_carry_no_signal():
    series = {
        "reward": [(s, 0.01 * s) for s in range(1, 9)],
        "no_signal_groups": [(s, 0.75) for s in range(1, 9)],
        "truncated": [(s, 0.1) for s in range(1, 9)],
        "reward_inline_think": [(8, 0.5)],
    }
    metrics = rl_metrics(series, prompts=16, too_long=0)
    assert metrics["no_signal_groups_mean"] == pytest.approx(0.75) and metrics["truncated_mean"] == pytest.approx(0.1)
    assert metrics["reward_gain"] == pytest.approx(0.06) and metrics["reward_inline_think_last"] == 0.5
    warnings = rl_warnings(metrics)
    assert len(warnings) == 1 and "75% of GRPO groups had all-equal rewards" in warnings[0]
    assert rl_warnings({**metrics, "no_signal_groups_mean": 0.2}) == []


class CharTokenizer:
    def apply_chat_template(self, messages, **_):
        return list(" ".join(m["content"] for m in messages))


def test_rl_prompts_are_drawn_in_a_seeded_order_across_sources():
    tests = {"kind": "call", "fn_name": "f", "inputs": [[1]], "outputs": [1]}
    problems = [
        {"id": f"{source}/{i}", "prompt": "x", "starter_code": "", "tests": tests}
        for source in ("humaneval", "leetcode")
        for i in range(20)
    ]
    rows, _ = build_rl_prompts(problems, CharTokenizer(), "s", 10_000, limit=10, shuffle_seed=0)
    again, _ = build_rl_prompts(list(reversed(problems)), CharTokenizer(), "s", 10_000, limit=10, shuffle_seed=0)
    assert [r["problem_id"] for r in rows] == [
        r["problem_id"] for r in again
    ]  # the order does not depend on the file's
    assert {r["problem_id"].split("/")[0] for r in rows} == {"humaneval", "leetcode"}
    in_order, _ = build_rl_prompts(problems, CharTokenizer(), "s", 10_000, limit=10, shuffle_seed=None)
    assert [r["problem_id"] for r in in_order] == [f"humaneval/{i}" for i in range(10)]


def test_rollouts_end_with_eos_once_their_code_block_closes(tiny_model_dir):
    """The tiny model, pushed to write a closing fence, then keeps going unless the processor ends it."""
    import torch

    from tasks.generation import end_generations_at_code_end
    from tasks.models import load_for_inference

    tokenizer, model = load_for_inference(tiny_model_dir, "float32")
    prompt = tokenizer("Answer with code.\n", return_tensors="pt")
    fence = tokenizer("```python\nx = 1\n```", add_special_tokens=False)["input_ids"]  # a whole block, then free

    def forced(processor_model):  # force a closed code block as the first tokens, then sample freely
        from transformers import LogitsProcessor, LogitsProcessorList

        class ForceFence(LogitsProcessor):
            def __call__(self, input_ids, scores):
                step = input_ids.shape[1] - prompt["input_ids"].shape[1]
                if step < len(fence):
                    scores[:, :] = float("-inf")
                    scores[:, fence[step]] = 0.0
                return scores

        torch.manual_seed(0)
        return processor_model.generate(
            **prompt,
            max_new_tokens=len(fence) + 8,
            do_sample=True,
            top_k=0,
            logits_processor=LogitsProcessorList([ForceFence()]),
            pad_token_id=tokenizer.pad_token_id,
        )

    free = forced(model)[0, prompt["input_ids"].shape[1] :].tolist()
    assert len(free) > len(fence) + 1  # without the processor it runs on past the fence
    end_generations_at_code_end(model, tokenizer)
    ended = forced(model)[0, prompt["input_ids"].shape[1] :].tolist()
    assert ended[: len(fence)] == fence and ended[len(fence)] == tokenizer.eos_token_id
