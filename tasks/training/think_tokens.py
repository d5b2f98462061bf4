"""Think-Anywhere*: the thinking tags as tokens of their own, with embeddings initialised from
related tokens, and a gradient mask that trains only those rows.

``<thinkanywhere>`` / ``</thinkanywhere>`` (and ``<think>`` / ``</think>`` where the tokenizer
splits them) are added to the vocabulary as single tokens. The tokenizer keeps them when it
decodes (they are added tokens, not ``special`` ones that ``skip_special_tokens`` would erase from
every completion a reward reads). Each new input- and output-embedding row is initialised as
the reference does: half the mean of the sub-token embeddings of the tag's word, plus half the
embedding of the chat start token (opening tags) or end token (closing tags):

    row(<thinkanywhere>)  = ½·mean(E[tokens of "thinkanywhere"]) + ½·E[<|im_start|>]
    row(</thinkanywhere>) = ½·mean(E[tokens of "thinkanywhere"]) + ½·E[<|im_end|>]

The new ids are written next to the model (``think_tokens.json``) so later stages know them.
Stage 1 of the SFT trains only those rows (``freeze_all_but_rows``); stage 2 is LoRA plus the
same rows (``train_rows`` on the LoRA model, the rows saved with each checkpoint: peft's own
trainable-token wrapper breaks TRL's fused LM head on tied embeddings).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TAGS = {  # tag: (word whose sub-tokens seed it, chat token it leans on)
    "<think>": ("think", "<|im_start|>"),
    "</think>": ("think", "<|im_end|>"),
    "<thinkanywhere>": ("thinkanywhere", "<|im_start|>"),
    "</thinkanywhere>": ("thinkanywhere", "<|im_end|>"),
}
RECORD = "think_tokens.json"


def is_single_token(tokenizer, text: str) -> bool:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"]) == 1


def tags_to_add(tokenizer) -> list[str]:
    """The tags the tokenizer splits into several tokens (a tokenizer that already has one as a
    single token keeps it, and its trained row)."""
    return [tag for tag in TAGS if not is_single_token(tokenizer, tag)]


def initial_rows(embedding, tokenizer, tags: list[str]):
    """The initial row for each tag from an embedding matrix (vocab × hidden), before resizing."""
    import torch

    rows = []
    for tag in tags:
        word, chat_token = TAGS[tag]
        word_ids = tokenizer(word, add_special_tokens=False)["input_ids"]
        chat_id = tokenizer.convert_tokens_to_ids(chat_token)
        if chat_id is None or chat_id == tokenizer.unk_token_id:
            raise ValueError(f"the tokenizer has no {chat_token} token to initialise {tag} from")
        rows.append(0.5 * embedding[word_ids].float().mean(0) + 0.5 * embedding[chat_id].float())
    return torch.stack(rows)


def add_think_tokens(model, tokenizer) -> dict[str, int]:
    """Add the missing tags to tokenizer and model, initialise their rows; returns {tag: id}."""
    import torch
    from tokenizers import AddedToken

    tags = tags_to_add(tokenizer)
    if not tags:
        return {}
    input_rows = initial_rows(model.get_input_embeddings().weight.data, tokenizer, tags)
    output = model.get_output_embeddings()
    tied = output is None or model.get_output_embeddings().weight is model.get_input_embeddings().weight
    output_rows = None if tied else initial_rows(output.weight.data, tokenizer, tags)
    tokenizer.add_tokens([AddedToken(tag, special=False, normalized=False) for tag in tags])
    ids = {tag: tokenizer.convert_tokens_to_ids(tag) for tag in tags}
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    if tied and model.get_output_embeddings() is not None:  # resizing can leave a fresh, untied head behind
        model.get_output_embeddings().weight = model.get_input_embeddings().weight
    with torch.no_grad():
        embedding = model.get_input_embeddings().weight
        for row, tag in zip(input_rows, tags):
            embedding[ids[tag]] = row.to(embedding.dtype)
        if output_rows is not None:
            head = model.get_output_embeddings().weight
            for row, tag in zip(output_rows, tags):
                head[ids[tag]] = row.to(head.dtype)
    return ids


def write_record(model_dir: Path, ids: dict[str, int]) -> None:
    (model_dir / RECORD).write_text(json.dumps({"tokens": ids}, indent=1))


def read_record(model_dir: Path) -> dict[str, int]:
    path = Path(model_dir) / RECORD
    return json.loads(path.read_text())["tokens"] if path.exists() else {}


def embedding_matrices(model) -> list[Any]:
    """The input embedding and, when it is not tied to it, the output embedding."""
    matrices = [model.get_input_embeddings().weight]
    output = model.get_output_embeddings()
    if output is not None and output.weight is not matrices[0]:
        matrices.append(output.weight)
    return matrices


def train_rows(model, row_ids: list[int]) -> list[Any]:
    """Make ``row_ids`` of the embedding matrices trainable and nothing else of them: a gradient hook
    zeroes the other rows. With Adam and no weight decay a row whose gradient is always zero never
    moves. Returns the matrices."""
    import torch

    if not row_ids:
        raise ValueError("training the think-token rows needs a model that has them (add the think tokens first)")
    matrices = embedding_matrices(model)
    for matrix in matrices:
        mask = torch.zeros(matrix.shape[0], 1, dtype=matrix.dtype)
        mask[row_ids] = 1
        matrix.requires_grad_(True)
        matrix.register_hook(lambda grad, mask=mask: grad * mask.to(grad.device, grad.dtype))
    return matrices


def freeze_all_but_rows(model, row_ids: list[int]) -> list[Any]:
    """Think-Anywhere* stage 1: every parameter frozen but the think-token embedding rows."""
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return train_rows(model, row_ids)


ROWS_FILE = "think_rows.pt"


def rows_callback(model, row_ids: list[int]):
    """Stage 2 (LoRA): a LoRA checkpoint holds only the adapter, so each checkpoint also gets the
    think-token rows (saved before the completion mark); ``restore_rows`` puts them back on resume."""
    import torch
    from transformers import TrainerCallback

    class SaveRows(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if state.is_world_process_zero and checkpoint.is_dir():
                torch.save([m.detach()[row_ids].clone() for m in embedding_matrices(model)], checkpoint / ROWS_FILE)
            return control

    return SaveRows()


def restore_rows(model, row_ids: list[int], checkpoint: Path) -> None:
    import torch

    saved = torch.load(checkpoint / ROWS_FILE)
    with torch.no_grad():
        for matrix, rows in zip(embedding_matrices(model), saved):
            matrix[row_ids] = rows.to(matrix.dtype)
