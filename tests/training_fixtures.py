"""Hand-made training data and artifacts for the training tests."""

import json
import time
from pathlib import Path

PROMPT = [{"role": "system", "content": "Write Python."}, {"role": "user", "content": "Add one to x."}]


def chat_rows(n: int) -> list[dict]:
    rows = []
    for i in range(n):
        code = f"def f(x):\n    return x + <thinkanywhere>step {i}</thinkanywhere>{i}\n"
        completion = f"<think>\nadd {i}\n</think>\n```python\n{code}```"
        rows.append(
            {
                "prompt": [PROMPT[0], {"role": "user", "content": f"Add {i} to x."}],
                "completion": [{"role": "assistant", "content": completion}],
            }
        )
    return rows


def commit_folder(folder: Path, kind: str, name: str) -> str:
    from storage import ArtifactStore

    return ArtifactStore().commit(folder, kind=kind, name=name, parents=[], config={}, metadata={}).artifact_id


def commit_dataset(tmp_path: Path, rows: list[dict]) -> str:
    folder = tmp_path / f"data-{len(rows)}"
    folder.mkdir(parents=True)
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return commit_folder(folder, "dataset", "hand-written")


def commit_model(source: Path, tmp_path: Path) -> str:
    from tasks.models import copy_model_dir

    return commit_folder(copy_model_dir(source, tmp_path / f"model-{time.monotonic_ns()}"), "checkpoint", "tiny")


def sft_section(**changes):
    from tasks.recipe import SFTSection

    base = {
        "max_steps": 120,
        "save_steps": 20,
        "learning_rate": 1e-3,
        "per_device_train_batch_size": 2,
        "max_length": 256,
        "timeout_s": 600,
    }
    return SFTSection(**{**base, **changes})


def tensors(model_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(Path(model_dir) / "model.safetensors"))
