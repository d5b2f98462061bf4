"""Think-Anywhere* training on the tiny model without think tags (~22 s on 2 cores): stage 1 moves
only the new token rows, stage 2 trains LoRA together with them and merges back."""

from training_fixtures import chat_rows, commit_dataset, commit_model, sft_section, tensors


def test_stage_one_moves_only_the_new_rows_and_stage_two_trains_lora_with_them(
    prefect_harness, tiny_without_tags, tmp_path, home
):
    import torch

    from storage import ArtifactStore
    from tasks.training.sft import add_think_tokens_to_model, train_sft
    from tasks.training.think_tokens import read_record

    store = ArtifactStore()
    base = commit_model(tiny_without_tags, tmp_path)
    extended = add_think_tokens_to_model(base)
    data = commit_dataset(tmp_path, chat_rows(8))
    new_rows = sorted(read_record(store.path(extended)).values())
    stage1 = train_sft(extended, data, sft_section(max_steps=3, save_steps=50, train="new_rows"))
    before, after = tensors(store.path(extended)), tensors(store.path(stage1))
    assert before.keys() == after.keys()
    for name in before:
        if name.endswith("embed_tokens.weight"):
            others = [i for i in range(before[name].shape[0]) if i not in new_rows]
            assert torch.equal(before[name][others], after[name][others]), "an old embedding row moved"
            assert not torch.equal(before[name][new_rows], after[name][new_rows]), "the new rows did not train"
        else:
            assert torch.equal(before[name], after[name]), f"{name} changed in stage 1"
    assert read_record(store.path(stage1)) == read_record(store.path(extended))  # the ids travel with the model

    stage2 = train_sft(
        stage1,
        data,
        sft_section(
            max_steps=2,
            save_steps=50,
            train="lora",
            lora={"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]},
        ),
    )
    merged = tensors(store.path(stage2))
    assert merged.keys() == after.keys()  # LoRA merged back: a plain checkpoint
    embed = next(n for n in merged if n.endswith("embed_tokens.weight"))
    assert not torch.equal(merged[embed][new_rows], after[embed][new_rows])  # the think rows train with LoRA
    assert any(not torch.equal(merged[n], after[n]) for n in merged if "q_proj" in n or "v_proj" in n)
