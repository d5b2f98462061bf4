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

from prefect import task

from tasks.evaluation.report import markdown_table
from tasks.plots import draw_curve, integer_steps, pyplot
from tasks.records import read_jsonl
from tasks.stage_run import StageRun, stage_cache


def interval(metrics: dict[str, float], name: str, digits: int = 3) -> str:
    return f"{metrics[name]:.{digits}f} [{metrics[name + '_ci_low']:.{digits}f}, {metrics[name + '_ci_high']:.{digits}f}]"


def pass_at_1(report: dict[str, Any] | None) -> str:
    """pass@1 over all of an evaluation report's problems, with its interval ("–" when not evaluated)."""
    if report is None:
        return "–"
    scores = report["pass_at_k"]["all"]
    return f"{scores['pass@1']:.3f} [{scores['pass@1_ci'][0]:.3f}, {scores['pass@1_ci'][1]:.3f}] ({scores['problems']} problems)"


def arms_table(labels: list[str], reports: list[dict[str, Any]],
               after_rlvr: dict[str, dict[str, Any]] | None = None) -> tuple[list[str], list[list[str]]]:
    """One row per held-out model; ``after_rlvr`` maps a model to the evaluation of the RLVR
    checkpoint that started from it."""
    judge = reports[0].get("judge", "judge") if reports else "judge"
    header = ["model", "held-out examples", f"{judge} reward, thinking", f"{judge} reward, no thinking (empty thought)",
              f"{judge} reward, plain continuation", "closes its thought", "thought words", "opens a thought unprompted",
              "suffix perplexity"] + (["pass@1 after RLVR from it"] if after_rlvr else [])
    rows = [[label, str(r["examples"]), interval(r, "judge_reward_thinking"), interval(r, "judge_reward_no_thinking"),
             interval(r, "judge_reward_plain"), f"{r['closes_thought']:.2f}", f"{r['thought_words']:.1f}",
             f"{r['opens_thought_unprompted']:.2f}", interval(r, "suffix_perplexity", 2)]
            + ([pass_at_1(after_rlvr.get(label))] if after_rlvr else [])
            for label, r in zip(labels, reports)]
    return header, rows


def paired_rows(labels: list[str], rows: list[list[dict[str, Any]]], resamples: int = 1000, confidence: float = 0.95,
                seed: int = 0) -> tuple[list[str], list[list[str]]]:
    """Every model against every one listed before it, on the same held-out examples: the mean
    per-example difference of the judge reward (thinking, empty thought, plain) and of the suffix's
    negative log-likelihood per token, each with a bootstrap interval over examples."""
    from tasks.evaluation.scoring import bootstrap_interval

    def keyed(model_rows: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
        return {(r["chunk_id"], r["boundary"]): r for r in model_rows}

    def per_token_nll(row: dict[str, Any]) -> float:
        return row["suffix_nll"] / max(1, row["suffix_tokens"])

    header = ["model", "vs", "examples", "Δ reward, thinking", "Δ reward, no thinking", "Δ reward, plain", "Δ suffix NLL per token"]
    table = []
    for later in range(len(labels)):
        for earlier in range(later):
            ours, theirs = keyed(rows[later]), keyed(rows[earlier])
            shared = [key for key in ours if key in theirs]
            if not shared:
                continue
            cells = [labels[later], labels[earlier], str(len(shared))]
            for value in (lambda r: r["reward_thinking"], lambda r: r["reward_no_thinking"], lambda r: r["reward_plain"], per_token_nll):
                differences = [value(ours[key]) - value(theirs[key]) for key in shared]
                low, high = bootstrap_interval(differences, resamples, confidence, seed)
                cells.append(f"{sum(differences) / len(differences):+.3f} [{low:+.3f}, {high:+.3f}]")
            table.append(cells)
    return header, table


def agreement_lines(stats: dict[str, Any]) -> str:
    """The judge agreement in a few lines of markdown."""
    return "\n".join([
        f"Judge agreement (LLM judge `{stats['llm_judge']['model']}` vs overlap F1 ≥ {stats['overlap_threshold']}) on "
        f"{stats['pairs']} held-out (prediction, truth) pairs: agreement {interval(stats, 'agreement')}, "
        f"Cohen's kappa {interval(stats, 'cohen_kappa')}; yes-rates LLM {stats['yes_rate_first']:.3f}, "
        f"overlap {stats['yes_rate_second']:.3f}; both yes {stats['both_yes']}, both no {stats['both_no']}, "
        f"only LLM {stats['only_first']}, only overlap {stats['only_second']}.",
        f"LLM judge on control pairs: YES to the true continuation {stats['llm_yes_rate_on_truth']:.3f} "
        f"({stats['truth_controls']} pairs), YES to another example's continuation {stats['llm_yes_rate_on_mismatch']:.3f} "
        f"({stats['mismatch_controls']} pairs)."])


def draw_rlmt(reward: list[tuple[int, float]], thought_words: list[tuple[int, float]], path: Path) -> bool:
    """Judge reward (left axis) and thought length in words (right axis) per RL mid-training step."""
    if not reward:
        return False
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(7, 4), dpi=110)
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
    axes.set_title("RL mid-training: reward and thinking length")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return True


def draw_post_training(curves: dict[str, list[tuple[int, float]]], path: Path) -> bool:
    return draw_curve(curves, tuple(curves), "RLVR post-training reward per arm", "mean reward", path)


@task(name="compare-midtraining", cache_policy=stage_cache(), persist_result=True)
def compare_midtraining(report_ids: list[str], labels: list[str], rlmt_id: str, rlvr_ids: dict[str, str],
                        rlvr_report_ids: dict[str, str] | None = None, agreement_id: str | None = None) -> str:
    """comparison.md/json (the arms table, the judge agreement), rlmt.png, post_training.png (when
    RLVR ran). ``rlvr_report_ids`` maps an arm to the evaluation report of its RLVR checkpoint."""
    rlvr_report_ids = rlvr_report_ids or {}
    inputs = {**{f"report_{i}": r for i, r in enumerate(report_ids)}, "rlmt": rlmt_id,
              **{f"rlvr_{arm}": checkpoint for arm, checkpoint in rlvr_ids.items()},
              **{f"rlvr_report_{arm}": report for arm, report in rlvr_report_ids.items()},
              **({"agreement": agreement_id} if agreement_id else {})}
    with StageRun("compare_midtraining", inputs=inputs, params={"labels": labels, "arms": list(rlvr_ids)}) as run:
        reports = [json.loads((run.input_path(f"report_{i}") / "report.json").read_text()) for i in range(len(report_ids))]
        after_rlvr = {arm: json.loads((run.input_path(f"rlvr_report_{arm}") / "report.json").read_text()) for arm in rlvr_report_ids}
        header, rows = arms_table(labels, reports, after_rlvr)
        example_rows = [read_jsonl(run.input_path(f"report_{i}") / "rows.jsonl") for i in range(len(report_ids))]
        paired_header, paired = paired_rows(labels, example_rows)
        table = markdown_table(header, rows) + ("\n\nPaired on the same held-out examples (later minus earlier; negative NLL = "
                                                "better):\n\n" + markdown_table(paired_header, paired) if paired else "")
        agreement = json.loads((run.input_path("agreement") / "agreement.json").read_text()) if agreement_id else None
        text = table + ("\n\n" + agreement_lines(agreement) if agreement else "")
        staged = run.staging("comparison")
        drew_rlmt = draw_rlmt(run.lineage.metric_series(rlmt_id, "reward_judge"), run.lineage.metric_series(rlmt_id, "reward_thought_words"),
                              staged / "rlmt.png")
        curves = {arm: run.lineage.metric_series(checkpoint, "reward") for arm, checkpoint in rlvr_ids.items()}
        drew_post = draw_post_training(curves, staged / "post_training.png")
        (staged / "comparison.md").write_text(text + "\n")
        (staged / "comparison.json").write_text(json.dumps({"header": header, "rows": rows, "reports": dict(zip(labels, report_ids)),
                                                            "paired": {"header": paired_header, "rows": paired},
                                                            "rlvr": rlvr_ids, "rlvr_reports": rlvr_report_ids,
                                                            "post_training_curves": curves, "judge_agreement": agreement}, indent=1))
        run.log.info("mid-training comparison:\n%s", text)
        return run.output("comparison", staged, kind="report", name="midtraining-comparison",
                          metadata={"labels": labels, "plots": [n for n, drew in (("rlmt.png", drew_rlmt), ("post_training.png", drew_post))
                                                                if drew]},
                          metrics={"models": len(report_ids)})
