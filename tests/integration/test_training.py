"""Training stages for real on the tiny model: Think-Anywhere* token rows (their initialisation rule; training
them, stage 1 and 2, is slow/test_think_token_training.py), GRPO that learns from the format terms, math RLVR.
Crash-safe resume after SIGKILL is slow/test_training_resume.py."""

import json

from conftest import PROJECT_ROOT
from training_fixtures import PROMPT, chat_rows, commit_dataset, commit_folder, commit_model, sft_section


def test_think_tokens_are_added_with_rows_initialised_by_the_rule(tiny_without_tags):
    import torch

    from tasks.models import load_for_inference
    from tasks.training.think_tokens import TAGS, add_think_tokens

    tokenizer, model = load_for_inference(tiny_without_tags)
    before = model.get_input_embeddings().weight.detach().clone()
    pieces = {tag: tokenizer(tag, add_special_tokens=False)["input_ids"] for tag in TAGS}
    assert all(len(ids) > 1 for ids in pieces.values())  # split into sub-tokens before
    ids = add_think_tokens(model, tokenizer)
    assert set(ids) == set(TAGS) and len(tokenizer) == before.shape[0] + 4
    after = model.get_input_embeddings().weight.detach()
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight  # tied: one matrix
    for tag, (word, chat) in TAGS.items():
        word_ids = tokenizer(word, add_special_tokens=False)["input_ids"]
        expected = 0.5 * before[word_ids].mean(0) + 0.5 * before[tokenizer.convert_tokens_to_ids(chat)]
        assert torch.allclose(after[ids[tag]], expected, atol=1e-6), tag
        assert tokenizer(f"x = {tag}y", add_special_tokens=False)["input_ids"].count(ids[tag]) == 1
    assert torch.equal(after[: before.shape[0]], before)  # old rows untouched
    text = "return x + <thinkanywhere>why</thinkanywhere>1"
    assert tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"], skip_special_tokens=True) == text


def plain_rows(n: int) -> list[dict]:
    """The same tasks as ``chat_rows``, answered with plain code: no thought anywhere."""
    return [
        {
            "prompt": [PROMPT[0], {"role": "user", "content": f"Add {i} to x."}],
            "completion": [{"role": "assistant", "content": f"```python\ndef f(x):\n    return x + {i}\n```"}],
        }
        for i in range(n)
    ]


def test_grpo_raises_the_share_of_replies_that_open_with_a_thought(prefect_harness, tiny_model_dir, tmp_path, home):
    """SFT on each task answered twice, once with thoughts (upfront and inline) and once as plain
    code, leaves the policy opening about half its replies with a thought, so most GRPO groups of 4
    hold both kinds and the format terms give a signal at every step. The tests expect values the
    taught code never returns, so only the format terms move. 30 GRPO steps (standard GRPO
    advantages, as in the reference) then raise the share of replies that open with a thought.

    Not a coin flip: fixed seeds (model 0, SFT and GRPO 0) and fixed thread counts (the worker turns
    OMP/MKL dynamic threads off) make the run repeat exactly, idle or with both cores busy (seen
    0.450 -> 0.762 over the first and last ten steps, 80 replies each). Across seeds the rise held
    every time tried (seeds 0, 2, 3, 4: +0.31, +0.16, +0.14, +0.32), above the 0.1 asserted. An
    earlier version (SFT on thoughtful replies only, Dr.GRPO on format rewards of 0.02) left 2 of 5
    seeds with no thought at all to reinforce, and failed under them."""
    from storage import LineageStore
    from tasks.recipe import RLSection, load_recipe
    from tasks.records import chat_prompt
    from tasks.training.rl import train_grpo
    from tasks.training.sft import train_sft

    recipe = load_recipe(PROJECT_ROOT / "configs" / "tiny.yaml")
    problems = [
        {
            "id": f"p/{i}",
            "source": "hand",
            "prompt": f"Add {i} to x.",
            "starter_code": "",
            "reference": None,
            "meta": {},
            "tests": {"kind": "call", "fn_name": "f", "inputs": [[1]], "outputs": [1000 + i]},
        }
        for i in range(16)
    ]
    folder = tmp_path / "problems"
    folder.mkdir()
    (folder / "problems.jsonl").write_text("".join(json.dumps(p) + "\n" for p in problems))
    problems_id = commit_folder(folder, "dataset", "hand-problems")
    rows = [
        {**row, "prompt": chat_prompt(problem, "Write Python.")}
        for answers in (chat_rows(16), plain_rows(16))
        for row, problem in zip(answers, problems)
    ]
    sft = train_sft(
        commit_model(tiny_model_dir, tmp_path),
        commit_dataset(tmp_path, rows),
        sft_section(max_steps=64, learning_rate=5e-3, per_device_train_batch_size=4, seed=0),
    )
    rl = RLSection(
        loss_type="grpo",
        max_steps=30,
        num_generations=4,
        per_device_train_batch_size=8,
        learning_rate=1e-3,
        temperature=1.0,
        max_completion_length=64,
        max_prompt_length=256,
        save_steps=100,
        timeout_s=900,
        seed=0,
    )
    checkpoint = train_grpo(sft, problems_id, rl, recipe.sandbox, "Write Python.")
    lineage = LineageStore(home / "lineage.duckdb")
    series = {
        name: dict(lineage.metric_series(checkpoint, name))
        for name in ("reward_upfront_think", "groups_dropped", "reward_correct")
    }
    assert sorted(series["reward_upfront_think"]) == list(range(1, 31))
    upfront = [series["reward_upfront_think"][step] for step in range(1, 31)]
    first, last = sum(upfront[:10]) / 10, sum(upfront[-10:]) / 10
    print(f"share of replies opening with a thought: first ten steps {first:.3f}, last ten {last:.3f}")
    assert 0.2 <= first <= 0.8, first  # SFT left room both ways: a signal in most groups
    assert last >= first + 0.1, (first, last)
    assert all(v == 0 for v in series["reward_correct"].values())
    assert lineage.metrics_of(checkpoint)["groups_dropped"] == sum(series["groups_dropped"].values())


def test_gsm8k_rows_load_with_bad_rows_quarantined_and_math_rl_runs(prefect_harness, tiny_model_dir, tmp_path, home):
    from storage import ArtifactStore, LineageStore
    from tasks.problems.math_problems import load_math_problems, load_math_source
    from tasks.recipe import RLSection
    from tasks.training.rl import train_math_rl

    source = f"gsm8k:{PROJECT_ROOT}/tests/fixtures/gsm8k.jsonl"
    problems, quarantined, rows = load_math_source(source)
    assert rows == 6 and [p["answer"] for p in problems] == ["7", "60", "300"]
    assert [(q.row, q.field, q.reason) for q in quarantined] == [
        (4, "answer", "no_final_answer"),
        (5, "question", "missing_field"),
        (6, "(row)", "not_json"),
    ]
    assert quarantined[0].message == "gsm8k.jsonl row 4: answer: a GSM8K answer ends with '#### <final answer>'"
    math_id = load_math_problems(source)
    assert len((ArtifactStore().path(math_id) / "quarantine.jsonl").read_text().splitlines()) == 3
    rl = RLSection(
        reward={"name": "math", "format_weight": 0.1},
        max_steps=2,
        num_generations=2,
        per_device_train_batch_size=4,
        max_completion_length=16,
        save_steps=100,
    )
    checkpoint = train_math_rl(commit_model(tiny_model_dir, tmp_path), math_id, rl, "Be brief.")
    series = LineageStore(home / "lineage.duckdb").metric_series(checkpoint, "reward_correct")
    assert [step for step, _ in series] == [1, 2]
    assert all(
        round(v * 4, 9).is_integer() for _, v in series
    )  # a share of the step's 4 completions, each right or wrong
