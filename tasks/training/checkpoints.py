"""Crash-safe checkpoints for the training worker.

The Trainer writes ``checkpoint-N/`` every ``save_steps`` steps (model, optimizer, scheduler, RNG
states, trainer state with the data position). A process killed while writing leaves a folder
that looks like a checkpoint but is not one, so the worker marks a checkpoint complete only after
the Trainer has finished saving it (``MarkComplete``, a callback that runs after the save): a
file written to a temporary name and renamed into place. Resuming takes the newest checkpoint
with that mark; folders without it are deleted first.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

COMPLETE = "thinkflow-complete.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def checkpoint_step(path: Path) -> int | None:
    match = _CHECKPOINT.match(path.name)
    return int(match.group(1)) if match and path.is_dir() else None


def mark_complete(checkpoint: Path, step: int) -> None:
    temporary = checkpoint / f".{COMPLETE}.{os.getpid()}.tmp"
    temporary.write_text(json.dumps({"step": step, "written_at": time.time()}))
    os.replace(temporary, checkpoint / COMPLETE)


def is_complete(checkpoint: Path) -> bool:
    try:
        return json.loads((checkpoint / COMPLETE).read_text())["step"] == checkpoint_step(checkpoint)
    except (OSError, ValueError, KeyError):
        return False


def discard_incomplete(folder: Path) -> list[Path]:
    """Delete checkpoint folders without the completion mark (a save that was cut short)."""
    removed = []
    for path in sorted(folder.glob("checkpoint-*")) if folder.exists() else []:
        if checkpoint_step(path) is not None and not is_complete(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def last_complete_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint under ``folder``, or None."""
    steps = [(checkpoint_step(p), p) for p in folder.glob("checkpoint-*")] if folder.exists() else []
    complete = [(step, p) for step, p in steps if step is not None and is_complete(p)]
    return max(complete)[1] if complete else None


def mark_complete_callback():
    """A TrainerCallback that marks each checkpoint complete once the Trainer has saved it."""
    from transformers import TrainerCallback

    class MarkComplete(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                if checkpoint.is_dir():
                    mark_complete(checkpoint, state.global_step)
                    print(f"thinkflow: checkpoint {state.global_step} complete", flush=True)
            return control

    return MarkComplete()
