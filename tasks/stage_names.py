"""A stage's names: its declared name (task, lineage, summary) and the flow's label for one use of
it, joined in the task run's name and read back from it. Imports nothing of the project."""

from __future__ import annotations


def task_run_name(stage_name: str, label: str | None) -> str:
    """A task run's name: the stage's own name, and the flow's label for this use when it says more
    ("grpo: rl"); a label that opens with the name is the name already ("evaluate rl")."""
    if not label or label == stage_name or label.startswith(stage_name + " "):
        return label or stage_name
    return f"{stage_name}: {label}"


def label_of(run_name: str, stage_name: str) -> str:
    """The flow's label in a task run's name (``task_run_name``'s inverse): the whole name where it has no
    "stage: " prefix (the stage name itself, or Prefect's own name for a task called outside a flow)."""
    prefix = f"{stage_name}: "
    return run_name[len(prefix) :] if run_name.startswith(prefix) else run_name
