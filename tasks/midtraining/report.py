"""The mid-training comparison: the held-out evaluation of every model side by side (judge reward
with and without thinking, suffix perplexity, and pass@1 after RLVR post-training from it, all
with intervals), every model paired with every other on the same examples, the judge agreement
when it was measured, and the paper's two figures as PNGs:
RL mid-training's judge reward and thinking length per step, and the post-training reward per
step of every RLVR arm."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tasks.evaluation.report import PAIRED_CELLS, markdown_table
from tasks.plots import integer_steps, pyplot
from tasks.records import read_jsonl
from tasks.stage_run import StageRun, stage


def interval(metrics: dict[str, float], name: str, digits: int = 3) -> str:
    return (
        f"{metrics[name]:.{digits}f} [{metrics[name + '_ci_low']:.{digits}f}, {metrics[name + '_ci_high']:.{digits}f}]"
    )


def pass_at_1(report: dict[str, Any] | None) -> str:
    """pass@1 over all of an evaluation report's problems, with its interval ("–" when not evaluated)."""
    if report is None:
        return "–"
    scores = report["pass_at_k"]["all"]
    return f"{scores['pass@1']:.3f} [{scores['pass@1_ci'][0]:.3f}, {scores['pass@1_ci'][1]:.3f}] ({scores['problems']} problems)"


def arms_table(
    labels: list[str],
    reports: list[dict[str, Any]],
    after_rlvr: dict[str, dict[str, Any]] | None = None,
    before_rlvr: dict[str, dict[str, Any]] | None = None,
) -> tuple[list[str], list[list[str]]]:
    """One row per held-out model; ``before_rlvr`` maps a model to its own evaluation on the RLVR
    problems' held-out side, ``after_rlvr`` to the evaluation of the RLVR checkpoint that started from it."""
    judge = reports[0].get("judge", "judge") if reports else "judge"
    header = (
        [
            "model",
            "held-out examples",
            f"{judge} reward, thinking",
            f"{judge} reward, no thinking (empty thought)",
            f"{judge} reward, plain continuation",
            "closes its thought",
            "thought words",
            "opens a thought unprompted",
            "suffix perplexity",
        ]
        + (["pass@1 before RLVR"] if before_rlvr else [])
        + (["pass@1 after RLVR from it"] if after_rlvr else [])
    )
    rows = [
        [
            label,
            str(r["examples"]),
            interval(r, "judge_reward_thinking"),
            interval(r, "judge_reward_no_thinking"),
            interval(r, "judge_reward_plain"),
            f"{r['closes_thought']:.2f}",
            f"{r['thought_words']:.1f}",
            f"{r['opens_thought_unprompted']:.2f}",
            interval(r, "suffix_perplexity", 2),
        ]
        + ([pass_at_1(before_rlvr.get(label))] if before_rlvr else [])
        + ([pass_at_1(after_rlvr.get(label))] if after_rlvr else [])
        for label, r in zip(labels, reports)
    ]
    return header, rows


def arm_label(arm: str) -> str:
    """An RLVR arm's label in the evaluation: where its post-training started."""
    return f"rlvr from {arm}"


def rlvr_pass_pairs(rows: list[list[str]], arms: list[str]) -> list[list[str]]:
    """From the evaluation's paired rows, the ones the paper's claim reads: arms after RLVR against each
    other, each arm after RLVR against its own start, and the starts against each other."""
    after = {arm_label(arm) for arm in arms}
    return [
        row
        for row in rows
        if {row[0], row[1]} <= after
        or {row[0], row[1]} <= set(arms)
        or (row[0] in after and row[0] == arm_label(row[1]))
    ]


def rlvr_signal_rows(
    arms: list[str], metrics: dict[str, dict[str, float]], no_signal: dict[str, list[tuple[int, float]]]
) -> tuple[list[str], list[list[str]]]:
    """Per RLVR arm: did its reward vary inside groups (an update needs that), and did it rise.
    ``no_signal`` is TRL's per-step share of groups whose rewards were all equal."""
    header = [
        "RLVR from",
        "steps",
        "groups with reward variance (mean over steps)",
        "lowest step",
        "steps without any",
        "reward, first → last quarter",
        "gain [95 % interval]",
        "completions cut at the cap",
    ]
    rows = []
    for arm in arms:
        m, shares = metrics[arm], [1.0 - value for _, value in no_signal.get(arm, [])]
        gain = (
            f"{m['reward_gain']:+.3f} [{m['reward_gain_ci_low']:+.3f}, {m['reward_gain_ci_high']:+.3f}]"
            if "reward_gain" in m
            else "– (under 4 steps)"
        )
        quarters = (
            f"{m['reward_first_quarter']:.3f} → {m['reward_last_quarter']:.3f}" if "reward_first_quarter" in m else "–"
        )
        rows.append(
            [
                arm,
                str(len(shares)),
                f"{sum(shares) / len(shares):.2f}" if shares else "–",
                f"{min(shares):.2f}" if shares else "–",
                str(sum(share == 0 for share in shares)) if shares else "–",
                quarters,
                gain,
                f"{m['truncated_mean']:.2f}" if "truncated_mean" in m else "–",
            ]
        )
    return header, rows


def probe_lines(metrics: dict[str, float], thought_words: list[tuple[int, float]]) -> str:
    """RL mid-training's trend on its fixed probe prefixes, in one paragraph ('' without a probe)."""
    if "probe_reward_gain" not in metrics:
        return ""
    m = {key.removeprefix("probe_reward_"): value for key, value in metrics.items() if key.startswith("probe_reward_")}
    words = (
        (
            f" Thought length on the probe: {thought_words[0][1]:.1f} → {thought_words[-1][1]:.1f} words "
            f"(steps {thought_words[0][0]} → {thought_words[-1][0]})."
        )
        if thought_words
        else ""
    )
    return (
        f"RL mid-training on its fixed probe set ({int(m['prompts'])} prefixes, {int(m['points'])} probe points): judge reward "
        f"{m['first_quarter']:.3f} → {m['last_quarter']:.3f} from the first to the last quarter of the points, gain "
        f"{m['gain']:+.3f} [{m['gain_ci_low']:+.3f}, {m['gain_ci_high']:+.3f}] on these prefixes, "
        f"[{m['gain_ci_low_prompts']:+.3f}, {m['gain_ci_high_prompts']:+.3f}] for prefixes like these.{words}"
    )


def paired_rows(
    labels: list[str], rows: list[list[dict[str, Any]]], resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> tuple[list[str], list[list[str]]]:
    """Every model against every one listed before it, on the same held-out examples: the mean
    per-example difference of the judge reward (thinking, empty thought, plain) and of the suffix's
    negative log-likelihood per token, each with a bootstrap interval over examples."""
    from tasks.intervals import mean_interval

    def keyed(model_rows: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
        return {(r["chunk_id"], r["boundary"]): r for r in model_rows}

    def per_token_nll(row: dict[str, Any]) -> float:
        return row["suffix_nll"] / max(1, row["suffix_tokens"])

    header = [
        "model",
        "vs",
        "examples",
        "Δ reward, thinking",
        "Δ reward, no thinking",
        "Δ reward, plain",
        "Δ suffix NLL per token",
    ]
    table = []
    for later in range(len(labels)):
        for earlier in range(later):
            ours, theirs = keyed(rows[later]), keyed(rows[earlier])
            shared = [key for key in ours if key in theirs]
            if not shared:
                continue
            cells = [labels[later], labels[earlier], str(len(shared))]
            for value in (
                lambda r: r["reward_thinking"],
                lambda r: r["reward_no_thinking"],
                lambda r: r["reward_plain"],
                per_token_nll,
            ):
                differences = [value(ours[key]) - value(theirs[key]) for key in shared]
                low, high = mean_interval(differences, resamples, confidence, seed)
                cells.append(f"{sum(differences) / len(differences):+.3f} [{low:+.3f}, {high:+.3f}]")
            table.append(cells)
    return header, table


def agreement_lines(stats: dict[str, Any]) -> str:
    """The judge agreement in a few lines of markdown."""
    return "\n".join(
        [
            f"Judge agreement (LLM judge `{stats['llm_judge']['model']}` vs overlap F1 ≥ {stats['overlap_threshold']}) on "
            f"{stats['pairs']} held-out (prediction, truth) pairs: agreement {interval(stats, 'agreement')}, "
            f"Cohen's kappa {interval(stats, 'cohen_kappa')}; yes-rates LLM {stats['yes_rate_first']:.3f}, "
            f"overlap {stats['yes_rate_second']:.3f}; both yes {stats['both_yes']}, both no {stats['both_no']}, "
            f"only LLM {stats['only_first']}, only overlap {stats['only_second']}.",
            f"LLM judge on control pairs: YES to the true continuation {stats['llm_yes_rate_on_truth']:.3f} "
            f"({stats['truth_controls']} pairs), YES to another example's continuation {stats['llm_yes_rate_on_mismatch']:.3f} "
            f"({stats['mismatch_controls']} pairs).",
        ]
    )


def reward_and_length(
    axes, reward: list[tuple[int, float]], thought_words: list[tuple[int, float]], title: str
) -> None:
    """Judge reward (left axis) and thought length in words (right axis) per step, on ``axes``."""
    steps, values = zip(*reward)
    axes.plot(steps, values, marker="o", markersize=3, color="tab:blue", label="judge reward")
    axes.set_xlabel("RL mid-training step")
    axes.set_ylabel("mean judge reward", color="tab:blue")
    if thought_words:
        other = axes.twinx()
        steps, values = zip(*thought_words)
        other.plot(steps, values, marker="s", markersize=3, color="tab:orange", label="thought words")
        other.set_ylabel("mean thought length (words)", color="tab:orange")
    axes.xaxis.set_major_locator(integer_steps())
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)


def draw_rlmt(
    reward: list[tuple[int, float]],
    thought_words: list[tuple[int, float]],
    path: Path,
    probe_reward: list[tuple[int, float]] | None = None,
    probe_words: list[tuple[int, float]] | None = None,
) -> bool:
    """RL mid-training per step: the training batches' judge reward and thought length, and beside them
    the same two on the fixed probe prefixes (when the run had a probe)."""
    if not reward:
        return False
    plt = pyplot()
    panels = 2 if probe_reward else 1
    figure, axes = plt.subplots(1, panels, figsize=(7 * panels, 4), dpi=110, squeeze=False)
    reward_and_length(axes[0][0], reward, thought_words, "training batches (each step draws other prefixes)")
    if probe_reward:
        reward_and_length(axes[0][1], probe_reward, probe_words or [], "fixed probe prefixes (the same at every point)")
    figure.suptitle("RL mid-training: judge reward and thinking length")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return True


def draw_post_training(
    curves: dict[str, list[tuple[int, float]]],
    spreads: dict[str, list[tuple[int, float]]],
    no_signal: dict[str, list[tuple[int, float]]],
    completions: int | None,
    path: Path,
) -> bool:
    """Left: RLVR reward per step per arm, banded by the 95 % normal interval of the step's mean over its
    ``completions`` (from the logged reward std). Right: the share of groups whose rewards varied."""
    present = [arm for arm in curves if curves[arm]]
    if not present:
        return False
    plt = pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 4), dpi=110)
    for index, arm in enumerate(present):
        steps, values = zip(*curves[arm])
        (line,) = left.plot(
            steps, values, marker="o", markersize=3, label=arm, linestyle=("-", "--", "-.", ":")[index % 4]
        )
        spread = dict(spreads.get(arm, []))
        if completions and spread:
            half = [1.96 * spread.get(step, 0.0) / completions**0.5 for step in steps]
            left.fill_between(
                steps,
                [v - h for v, h in zip(values, half)],
                [v + h for v, h in zip(values, half)],
                color=line.get_color(),
                alpha=0.15,
            )
        if no_signal.get(arm):
            steps, values = zip(*no_signal[arm])
            right.plot(
                steps,
                [1 - v for v in values],
                marker="o",
                markersize=3,
                color=line.get_color(),
                label=arm,
                linestyle=("-", "--", "-.", ":")[index % 4],
            )
    for axes, title, ylabel in (
        (left, "RLVR reward per step (band: 95 % interval of the step mean)", "mean reward"),
        (right, "groups with reward variance (what an update learns from)", "share of groups"),
    ):
        axes.xaxis.set_major_locator(integer_steps())
        axes.set_title(title, fontsize=10)
        axes.set_xlabel("RLVR step")
        axes.set_ylabel(ylabel)
        axes.grid(alpha=0.3)
        axes.legend(loc="best", fontsize=8)
    right.set_ylim(-0.02, 1.02)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return True


@stage(
    "compare_midtraining",
    inputs={
        "report_": "report_ids",
        "rlmt": "rlmt_id",
        "rlvr_": "rlvr_ids",
        "rlvr_report_": "rlvr_report_ids",
        "agreement": "agreement_id",
        "start_report_": "start_report_ids",
        "calibration": "calibration_id",
        "evaluation": "evaluation_comparison_id",
    },
)
def compare_midtraining(
    report_ids: list[str],
    labels: list[str],
    rlmt_id: str,
    rlvr_ids: dict[str, str],
    rlvr_report_ids: dict[str, str] | None = None,
    agreement_id: str | None = None,
    start_report_ids: dict[str, str] | None = None,
    calibration_id: str | None = None,
    completions_per_step: int | None = None,
    evaluation_comparison_id: str | None = None,
) -> str:
    """comparison.md/json (the arms table, RLVR's signal per arm, RL mid-training's probe trend, the
    calibration of the RLVR set, the judge agreement), rlmt.png, post_training.png (when RLVR ran).
    ``rlvr_report_ids`` maps an arm to the evaluation report of its RLVR checkpoint, ``start_report_ids``
    to that of its starting point on the same problems."""
    rlvr_report_ids, start_report_ids = rlvr_report_ids or {}, start_report_ids or {}
    with StageRun() as run:
        reports = [
            json.loads((run.input_path(f"report_{i}") / "report.json").read_text()) for i in range(len(report_ids))
        ]

        def evaluation(name: str) -> dict[str, Any]:
            return json.loads((run.input_path(name) / "report.json").read_text())

        after_rlvr = {arm: evaluation(f"rlvr_report_{arm}") for arm in rlvr_report_ids}
        before_rlvr = {arm: evaluation(f"start_report_{arm}") for arm in start_report_ids}
        header, rows = arms_table(labels, reports, after_rlvr, before_rlvr)
        example_rows = [read_jsonl(run.input_path(f"report_{i}") / "rows.jsonl") for i in range(len(report_ids))]
        paired_header, paired = paired_rows(labels, example_rows)
        table = markdown_table(header, rows) + (
            "\n\nPaired on the same held-out examples (later minus earlier; negative NLL = "
            "better):\n\n" + markdown_table(paired_header, paired)
            if paired
            else ""
        )
        series = run.lineage.metric_series
        no_signal = {arm: series(checkpoint, "no_signal_groups") for arm, checkpoint in rlvr_ids.items()}
        signal_header, signal = rlvr_signal_rows(
            list(rlvr_ids), {arm: run.lineage.metrics_of(c) for arm, c in rlvr_ids.items()}, no_signal
        )
        sections = [table]
        if evaluation_comparison_id:
            evaluated = json.loads((run.input_path("evaluation") / "comparison.json").read_text())
            pass_pairs = rlvr_pass_pairs(evaluated["paired_rows"], list(rlvr_ids))
            if pass_pairs:
                sections.append(
                    "pass@1 on the RLVR family's held-out problems, paired (later minus earlier), each cell: "
                    f"{PAIRED_CELLS}.\n\n" + markdown_table(evaluated["paired_header"], pass_pairs)
                )
        if signal:
            sections.append("RLVR post-training, per arm:\n\n" + markdown_table(signal_header, signal))
        if calibration_id:
            sections.append(
                "The RLVR set, calibrated on every arm's starting point:\n\n"
                + (run.input_path("calibration") / "calibration.md").read_text().strip()
            )
        probe = probe_lines(run.lineage.metrics_of(rlmt_id), series(rlmt_id, "probe_thought_words"))
        sections += [probe] if probe else []
        agreement = json.loads((run.input_path("agreement") / "agreement.json").read_text()) if agreement_id else None
        sections += [agreement_lines(agreement)] if agreement else []
        text = "\n\n".join(sections)
        staged = run.staging("comparison")
        drew_rlmt = draw_rlmt(
            series(rlmt_id, "reward_judge"),
            series(rlmt_id, "reward_thought_words"),
            staged / "rlmt.png",
            series(rlmt_id, "probe_reward"),
            series(rlmt_id, "probe_thought_words"),
        )
        curves = {arm: series(checkpoint, "reward") for arm, checkpoint in rlvr_ids.items()}
        spreads = {arm: series(checkpoint, "reward_std") for arm, checkpoint in rlvr_ids.items()}
        drew_post = draw_post_training(curves, spreads, no_signal, completions_per_step, staged / "post_training.png")
        (staged / "comparison.md").write_text(text + "\n")
        (staged / "comparison.json").write_text(
            json.dumps(
                {
                    "header": header,
                    "rows": rows,
                    "reports": dict(zip(labels, report_ids)),
                    "paired": {"header": paired_header, "rows": paired},
                    "rlvr": rlvr_ids,
                    "rlvr_reports": rlvr_report_ids,
                    "start_reports": start_report_ids,
                    "rlvr_signal": {"header": signal_header, "rows": signal},
                    "post_training_curves": curves,
                    "judge_agreement": agreement,
                },
                indent=1,
            )
        )
        run.log.info("mid-training comparison:\n%s", text)
        return run.output(
            "comparison",
            staged,
            kind="report",
            name="midtraining-comparison",
            metadata={
                "labels": labels,
                "plots": [n for n, drew in (("rlmt.png", drew_rlmt), ("post_training.png", drew_post)) if drew],
            },
            metrics={"models": len(report_ids)},
        )
