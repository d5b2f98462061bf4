"""Training curves as PNG files: drawn with matplotlib (Agg, no display) and registered as an artifact
in lineage (the flow's stage artifact shows them in the Prefect UI, flows/runtime/prefect_artifacts.py)."""

from __future__ import annotations

from pathlib import Path

Series = dict[str, list[tuple[int, float]]]

Curves = dict[str, tuple[str, str, tuple[str, ...]]]  # file: (title, y label, series drawn)

CURVES: Curves = {  # the reward terms' series join these where their registration says (tasks/training/rl.py)
    "reward.png": ("Reward per step", "mean reward", ("reward", "reward_judge")),
    "probe.png": ("Reward on the fixed probe set", "mean over the probe completions", ("probe_reward",)),
    "think_share.png": ("Completions with thoughts", "share of completions", ()),
    "signal.png": ("GRPO signal", "share", ("no_signal_groups", "reward_correct_varies", "truncated")),
    "loss.png": ("Loss and KL", "value", ("loss", "kl")),
}


def with_series(curves: Curves, extra: dict[str, list[str]]) -> Curves:
    """``curves`` with more series drawn in the files ``extra`` names (each file's own series first)."""
    return {
        file: (title, ylabel, tuple(dict.fromkeys((*names, *extra.get(file, ())))))
        for file, (title, ylabel, names) in curves.items()
    }


LINE_STYLES = ("-", "--", "-.", ":")


def integer_steps():
    """Tick marks on whole steps only (a 3-step run is not labelled 1.25, 1.5, ...)."""
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def pyplot():
    """matplotlib's pyplot on the Agg backend (files only, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def draw_curve(series: Series, names: tuple[str, ...], title: str, ylabel: str, path: Path) -> bool:
    """One line per named series present; False (nothing written) when none is."""
    plt = pyplot()
    present = [name for name in names if series.get(name)]
    if not present:
        return False
    figure, axes = plt.subplots(figsize=(7, 4), dpi=110)
    for i, name in enumerate(present):
        steps, values = zip(*series[name])
        # curves that coincide (flat runs, arms with the same reward) stay visible: each series
        # has its own dash and a marker a size smaller than the one drawn before it
        axes.plot(
            steps,
            values,
            linestyle=LINE_STYLES[i % len(LINE_STYLES)],
            marker="o" if len(steps) < 40 else None,
            markersize=max(2, 3 + 2 * (len(present) - 1 - i)),
            linewidth=1.6,
            label=name,
        )
    axes.xaxis.set_major_locator(integer_steps())
    axes.set_title(title)
    axes.set_xlabel("step")
    axes.set_ylabel(ylabel)
    axes.grid(alpha=0.3)
    axes.legend(loc="best", fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return True


def draw_curves(series: Series, folder: Path, curves: Curves = CURVES) -> list[Path]:
    """Each curve file with data, and ``curves.json``: the series each file draws."""
    import json

    drawn, drawn_series = [], {}
    for filename, (title, ylabel, names) in curves.items():
        if draw_curve(series, names, title, ylabel, folder / filename):
            drawn.append(folder / filename)
            drawn_series[filename] = [name for name in names if series.get(name)]
    if drawn:
        (folder / "curves.json").write_text(json.dumps(drawn_series, indent=1))
    return drawn


def save_curves(
    run, checkpoint_id: str, series: Series, files: tuple[Path, ...] = (), curves: Curves = CURVES
) -> str | None:
    """Draw the run's curves, commit them (and ``files``, e.g. the probe set's scored completions) as a
    ``report`` artifact; its id (None when no curve had data)."""
    import shutil

    staged = run.staging("curves")
    drawn = draw_curves(series, staged, curves)
    if not drawn:
        return None
    for path in files:
        if path.exists():
            shutil.copy2(path, staged / path.name)
    return run.output(
        "curves", staged, kind="report", name=f"{run.stage}-curves", metadata={"checkpoint": checkpoint_id}
    )
