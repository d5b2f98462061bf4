"""Training curves as PNG files: drawn with matplotlib (Agg, no display), registered as an artifact
in lineage, and linked from a Prefect markdown artifact."""

from __future__ import annotations

from pathlib import Path

Series = dict[str, list[tuple[int, float]]]

CURVES = {  # file: (title, y label, series drawn)
    "reward.png": (
        "Reward per step",
        "mean reward",
        (
            "reward",
            "reward_correct",
            "reward_tests_passed",
            "reward_upfront_think",
            "reward_inline_think",
            "reward_judge",
        ),
    ),
    "probe.png": (
        "Reward on the fixed probe set",
        "mean over the probe completions",
        ("probe_reward", "probe_correct", "probe_upfront_think", "probe_inline_think"),
    ),
    "think_share.png": (
        "Completions with thoughts",
        "share of completions",
        ("reward_upfront_think", "inline_think_rate"),
    ),
    "signal.png": ("GRPO signal", "share", ("no_signal_groups", "reward_correct_varies", "truncated")),
    "loss.png": ("Loss and KL", "value", ("loss", "kl")),
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


def draw_curves(series: Series, folder: Path) -> list[Path]:
    drawn = []
    for filename, (title, ylabel, names) in CURVES.items():
        if draw_curve(series, names, title, ylabel, folder / filename):
            drawn.append(folder / filename)
    return drawn


def publish_curves(run, checkpoint_id: str, series: Series, files: tuple[Path, ...] = ()) -> str | None:
    """Draw the run's curves, commit them (and ``files``, e.g. the probe set's scored completions) as a
    ``report`` artifact, link them from Prefect."""
    import shutil

    staged = run.staging("curves")
    drawn = draw_curves(series, staged)
    if not drawn:
        return None
    for path in files:
        if path.exists():
            shutil.copy2(path, staged / path.name)
    curves_id = run.output(
        "curves", staged, kind="report", name=f"{run.stage}-curves", metadata={"checkpoint": checkpoint_id}
    )
    folder = run.store.path(curves_id)
    lines = [f"# {run.stage}: training curves", "", f"checkpoint `{checkpoint_id}`, curves artifact `{curves_id}`", ""]
    lines += [f"- [{path.name}]({(folder / path.name).as_uri()})" for path in drawn]
    last = {name: points[-1][1] for name, points in series.items() if points}
    lines += ["", "| metric | last |", "|---|---|"] + [f"| {k} | {v:.4g} |" for k, v in sorted(last.items())]
    try:
        from prefect.artifacts import create_markdown_artifact

        create_markdown_artifact(
            key=f"{run.stage.replace('_', '-')}-curves", markdown="\n".join(lines), description="training curves"
        )
    except Exception:  # noqa: BLE001 - the PNGs are in lineage either way; never fail training over a link
        run.log.warning("could not publish the curves' Prefect artifact")
    return curves_id
