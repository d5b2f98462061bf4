"""Decoding: in rounds, only the rows still open go on, and what they decode is what one long round decodes;
sampling by inverse CDF draws from the distribution HF's sampling draws from."""

import torch

from tasks.generation import HFBackend, Sampling, decode_in_rounds, make_inverse_cdf_sampler

PROMPTS = ["def f(x):", "x = 1\ny = ", "import os\nprint(", "a"]
GREEDY = {"do_sample": False, "top_k": None, "top_p": None, "temperature": None}


def test_open_rows_are_pooled_across_batches_and_decode_what_each_prompt_decodes_alone(tiny_model_dir):
    backend = HFBackend(tiny_model_dir)
    tokenizer, model = backend.tokenizer, backend.model
    prompts = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in PROMPTS]
    alone = []
    with torch.no_grad():
        for ids in prompts:
            out = model.generate(
                input_ids=torch.tensor([ids]), max_new_tokens=24, pad_token_id=tokenizer.pad_token_id, **GREEDY
            )
            alone.append(out[0, len(ids) :].tolist())
    calls = []

    def generate(**kwargs):
        calls.append(tuple(kwargs["input_ids"].shape))
        return model.generate(**kwargs)

    with torch.no_grad():
        new_tokens = decode_in_rounds(
            generate,
            prompts,
            rows_per_batch=2,
            max_new_tokens=24,
            round_tokens=8,
            finished=lambda tokens: tokens.tolist() == alone[1][:8],
            pad_token_id=tokenizer.pad_token_id,
            **GREEDY,
        )
    # round 1: the four rows in two batches; row 1 ends there; rounds 2 and 3: the three open rows, pooled
    assert [rows for rows, _ in calls] == [2, 2, 2, 1, 2, 1]
    for row in (0, 2, 3):
        assert new_tokens[row] == alone[row]
    assert new_tokens[1] == alone[1][:8]


def test_the_backend_gives_the_same_greedy_replies_in_rounds_and_n_samples_per_prompt(tiny_model_dir):
    backend = HFBackend(tiny_model_dir, batch_size=3)
    one_round = backend.complete(PROMPTS, Sampling(max_new_tokens=20, stop_on_code_end=False))
    in_rounds = backend.complete(PROMPTS, Sampling(max_new_tokens=20, stop_on_code_end=False, round_tokens=6))
    assert in_rounds == one_round

    sampled = backend.complete(
        PROMPTS, Sampling(max_new_tokens=12, n=2, temperature=1.0, round_tokens=5, stop_on_code_end=False)
    )
    assert [len(replies) for replies in sampled] == [2, 2, 2, 2]
    assert any(first != second for first, second in sampled)  # each copy drew its own tokens


def test_the_inverse_cdf_sampler_draws_softmax_of_scores_over_temperature_and_never_a_banned_token():
    scores = torch.tensor([[2.0, 1.0, 0.0, float("-inf"), -1.0]]).repeat(40_000, 1)
    torch.manual_seed(0)
    chosen = make_inverse_cdf_sampler(0.7)(None, scores.clone()).argmax(dim=-1)
    counts = torch.bincount(chosen, minlength=5).double() / len(chosen)
    expected = torch.softmax(scores[0] / 0.7, dim=-1).double()
    assert counts[3] == 0
    assert torch.allclose(counts, expected, atol=4 * (0.25 / len(chosen)) ** 0.5), (counts, expected)


def test_sampling_through_the_patched_generate_is_seeded_expands_copies_and_follows_the_temperature(tiny_model_dir):
    backend = HFBackend(tiny_model_dir)
    tokenizer, model = backend.tokenizer, backend.model
    assert model._samples_by_inverse_cdf
    batch = tokenizer(PROMPTS, return_tensors="pt", padding=True, add_special_tokens=False)
    sampling = {
        "do_sample": True,
        "top_k": 0,
        "top_p": 1.0,
        "max_new_tokens": 10,
        "pad_token_id": tokenizer.pad_token_id,
    }
    with torch.no_grad():
        greedy = model.generate(**batch, max_new_tokens=10, pad_token_id=tokenizer.pad_token_id, **GREEDY)
        cold = model.generate(**batch, temperature=1e-4, num_return_sequences=3, **sampling)
        runs = []
        for _ in range(2):
            torch.manual_seed(7)
            runs.append(model.generate(**batch, temperature=1.5, num_return_sequences=3, **sampling))
    assert torch.equal(cold, greedy.repeat_interleave(3, dim=0))  # near temperature 0 every copy is the greedy reply
    assert torch.equal(runs[0], runs[1]) and runs[0].shape[0] == 12
    assert not torch.equal(runs[0][0::3], runs[0][1::3])  # copies of a prompt are drawn apart


def test_the_patched_generate_hands_transformers_one_generation_config_and_no_settings_beside_it(tiny_model_dir):
    """transformers deprecates settings passed beside a generation config (its warning filled the demo's console)."""
    from transformers import AutoModelForCausalLM

    from tasks.generation import sample_by_inverse_cdf

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    seen = []
    original = model.generate

    def recording_generate(*args, **kwargs):
        seen.append(kwargs)
        return original(*args, **kwargs)

    model.generate = recording_generate
    sample_by_inverse_cdf(model)
    ids = torch.tensor([[1, 2, 3]])
    for settings in (GREEDY, {"do_sample": True, "temperature": 0.7, "top_k": None, "top_p": None}):
        model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=3, pad_token_id=0, **settings)
    for kwargs in seen:
        assert set(kwargs) <= {"input_ids", "attention_mask", "generation_config", "logits_processor"}, set(kwargs)
        assert kwargs["generation_config"].max_new_tokens == 3 and kwargs["generation_config"].pad_token_id == 0
    assert len(seen) == 2 and seen[0]["generation_config"].do_sample is False
