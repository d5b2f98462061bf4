"""SFT killed (SIGKILL to the worker's group) once a checkpoint is complete resumes from it and ends where an
uninterrupted run ends (about a minute: two SFT runs and a resumed one)."""

import os
import signal
import threading
import time
from pathlib import Path

import pytest
from training_fixtures import chat_rows, commit_dataset, commit_model, sft_section, tensors


def kill_after_first_checkpoint(home: Path, done: threading.Event, killed: list) -> None:
    """Watch the SFT run's folder; once a checkpoint is marked complete, SIGKILL the whole worker group."""
    from tasks.training.checkpoints import COMPLETE

    while not done.is_set():
        marks = list(home.glob(f"work/sft-*/trainer/checkpoint-*/{COMPLETE}"))
        pid_files = list(home.glob("work/sft-*/launcher.pid"))
        if marks and pid_files:
            os.killpg(int(pid_files[0].read_text()), signal.SIGKILL)
            killed.append(sorted(int(m.parent.name.split("-")[1]) for m in marks))
            return
        time.sleep(0.02)


def test_sft_killed_after_a_checkpoint_resumes_and_ends_where_an_uninterrupted_run_ends(
    prefect_harness, tiny_model_dir, tmp_path, monkeypatch
):
    from prefect import flow

    from storage import ArtifactStore, LineageStore
    from tasks.recipe import SFTSection
    from tasks.training.launch import TrainingFailed
    from tasks.training.sft import train_sft

    @flow
    def sft_flow(model_id: str, data_id: str, cfg: SFTSection) -> str:
        return train_sft.with_options(retries=0)(model_id, data_id, cfg)

    cfg, finals = sft_section(), {}
    for label in ("uninterrupted", "killed"):
        home = tmp_path / label
        monkeypatch.setenv("THINKFLOW_HOME", str(home))
        model_id, data_id = (
            commit_model(tiny_model_dir, tmp_path / label),
            commit_dataset(tmp_path / label, chat_rows(12)),
        )
        if label == "killed":
            done, killed = threading.Event(), []
            watcher = threading.Thread(target=kill_after_first_checkpoint, args=(home, done, killed))
            watcher.start()
            with pytest.raises(TrainingFailed, match="worker exited with -9"):
                sft_flow(model_id, data_id, cfg)
            done.set()
            watcher.join()
            assert killed and killed[0][-1] < cfg.max_steps, "the run was not killed between checkpoints"
        final = sft_flow(model_id, data_id, cfg)
        finals[label] = (home, final)

    home, final = finals["killed"]
    lineage = LineageStore(home / "lineage.duckdb")
    metrics = lineage.metrics_of(final)
    assert 0 < metrics["resumed_from_step"] < cfg.max_steps
    assert metrics["resumed_from_step"] % cfg.save_steps == 0
    steps = [step for step, _ in lineage.metric_series(final, "loss")]
    assert steps == list(range(1, cfg.max_steps + 1))  # the step counter went on from the checkpoint
    assert not list(home.glob("work/sft-*")), "the resumable folder is removed once the run completes"
    ours = tensors(ArtifactStore(home).path(final))
    theirs = tensors(ArtifactStore(finals["uninterrupted"][0]).path(finals["uninterrupted"][1]))
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert (ours[name] - theirs[name]).abs().max().item() <= 1e-6, name
