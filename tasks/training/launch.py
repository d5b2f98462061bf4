"""How a training stage runs: in its own process, ``accelerate launch -m tasks.training.worker SPEC.json``.

The task owns the process (``run_streamed``, tasks/child_process.py): it streams the worker's output
into the run log (library warnings as warnings), kills the whole process group at the stage's
wall-clock limit (Prefect's timeout cannot stop a thread), and turns a failure into an error that
quotes the worker's last lines. The worker trains in a folder named by the run's inputs, params and code (``StageRun.resumable_dir``) that
survives a failed attempt, so a retry, or a re-run after the process was killed, resumes from the
last complete checkpoint. The stages themselves are in tasks/training/sft.py and tasks/training/rl.py,
each declaring the worker modules it runs (``STAGE_FILES``), so an RL-only change re-runs no SFT.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from tasks.child_process import run_streamed
from tasks.recipe import RLSection, SFTSection
from tasks.stage_run import PROJECT_ROOT, StageRun


class TrainingFailed(RuntimeError):
    """The worker failed. ``transient``: it was killed (a signal, the time limit), so a retry may finish
    (it resumes from the last complete checkpoint); an exit with a traceback is a bug or bad data."""

    def __init__(self, message: str, transient: bool = False):
        super().__init__(message)
        self.transient = transient


def accelerate_config(name: str) -> Path:
    """``auto``: one CPU process, or one GPU when CUDA is present; else a path (relative to the project)."""
    if name == "auto":
        import torch

        name = "configs/accelerate/single_gpu.yaml" if torch.cuda.is_available() else "configs/accelerate/cpu.yaml"
    path = Path(name) if Path(name).is_absolute() else PROJECT_ROOT / name
    if not path.exists():
        raise ValueError(f"accelerate config {path} does not exist")
    return path


def worker_command(spec_path: Path, config: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(config),
        "-m",
        "tasks.training.worker",
        str(spec_path),
    ]


def launch_worker(
    spec: dict[str, Any], workdir: Path, timeout_s: float, config: Path, extra_env: dict[str, str] | None = None
) -> None:
    """Run the worker on ``spec`` (``extra_env`` added to its environment: the tracker's run); raise
    TrainingFailed with its tail on failure or at the time limit."""
    spec_path = workdir / "spec.json"
    spec_path.write_text(json.dumps(spec, indent=1))
    code, tail = run_streamed(
        worker_command(spec_path, config), spec["stage"], timeout_s, extra_env, pid_file=workdir / "launcher.pid"
    )
    if code is None:
        raise TrainingFailed(
            f"{spec['stage']} exceeded its {timeout_s:.0f} s limit and was killed; "
            "a re-run resumes from its last complete checkpoint",
            transient=True,
        )
    if code != 0:  # negative: killed by a signal (the OOM killer, a preempted node): worth one more attempt
        raise TrainingFailed(
            f"{spec['stage']} worker exited with {code}:\n" + "\n".join(tail),
            transient=code < 0 or code in (137, 143),
        )


def trainer_series(
    run: StageRun, log_history: list[dict[str, Any]], keys: dict[str, str]
) -> dict[str, list[tuple[int, float]]]:
    """``history_series``, noting on the run that the trainer already sent these series to the tracker."""
    series = history_series(log_history, keys)
    if run.tracked is not None:
        run.logged_by_trainer |= set(series)
    return series


def history_series(log_history: list[dict[str, Any]], keys: dict[str, str]) -> dict[str, list[tuple[int, float]]]:
    """Per-step series from TRL's log history: {our name: [(step, value)]} for the keys present."""
    series: dict[str, list[tuple[int, float]]] = {}
    for entry in log_history:
        step = entry.get("step")
        for ours, theirs in keys.items():
            value = entry.get(theirs)
            if step is not None and isinstance(value, (int, float)) and math.isfinite(value):
                series.setdefault(ours, []).append((int(step), float(value)))
    return series


def run_worker(
    run: StageRun, spec: dict[str, Any], section: SFTSection | RLSection
) -> tuple[Path, list[dict[str, Any]], dict[str, float]]:
    """Launch the worker in the run's resumable folder with the section as JSON (the worker passes
    the fields TRL's config knows straight through); (folder, log history, timing metrics)."""
    work = run.resumable_dir()
    spec = {
        **spec,
        "output_dir": str(work),
        "section": section.to_json(),
        "report_to": "mlflow" if run.tracked else "none",
    }
    started = time.monotonic()
    launch_worker(spec, work, section.timeout_s, accelerate_config(section.accelerate_config), run.tracker_env())
    history = json.loads((work / "log_history.json").read_text())
    resumed = json.loads((work / "resume.json").read_text())["resumed_from_step"]
    if resumed:
        run.log.info("%s resumed from step %d", spec["stage"], resumed)
    return work, history, {"seconds": time.monotonic() - started, "resumed_from_step": resumed}
