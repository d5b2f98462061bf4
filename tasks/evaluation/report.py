"""The comparison people read: one table over evaluation reports (pass@1 with its interval per
benchmark, how much and where the model thinks, entropy at think sites), PNG plots, all committed
as one ``comparison`` artifact downstream of the reports and linked from a Prefect markdown artifact."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tasks.plots import pyplot
from tasks.stage_run import StageRun, stage


def load_report(folder: Path) -> tuple[dict[str, Any], list[dict[str, list[float]]]]:
    return json.loads((folder / "report.json").read_text()), json.loads((folder / "entropy.json").read_text())


def load_problem_rows(folder: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    return pq.read_table(folder / "problems.parquet").to_pylist()


def paired_comparisons(
    reports: list[dict[str, Any]], problems: list[list[dict[str, Any]]], labels: list[str]
) -> list[dict[str, Any]]:
    """Each evaluation against every earlier one with the same variant (the first is the base model,
    when it was evaluated; then RL against SFT, an arm against the other): pass@1 differences on the
    same problems, with intervals."""
    from tasks.evaluation.scoring import paired_difference

    pairs, earlier = [], {}
    for index, report in enumerate(reports):
        variant = report["variant"]["name"]
        for other in earlier.get(variant, []):
            scoring = report["scoring"]
            pairs.append(
                {
                    "checkpoint": labels[index],
                    "baseline": labels[other],
                    "variant": variant,
                    "first_of_variant": other == earlier[variant][0],
                    "by_benchmark": paired_difference(
                        problems[index], problems[other], scoring["bootstrap_resamples"], scoring["confidence"]
                    ),
                }
            )
        earlier.setdefault(variant, []).append(index)
    return pairs


def paired_metrics(pairs: list[dict[str, Any]]) -> dict[str, float]:
    """The paired differences as lineage metrics a script can read: ``paired/<checkpoint>/<benchmark>/delta``
    (and ``low``, ``high``) against the first evaluation of the variant (the base), and
    ``paired/<checkpoint>-vs-<other>/<benchmark>/…`` against every later one (RL vs SFT)."""
    metrics = {}
    for pair in pairs:
        name = pair["checkpoint"] if pair["first_of_variant"] else f"{pair['checkpoint']}-vs-{pair['baseline']}"
        if pair["variant"] != "thinking":
            name += f" ({pair['variant']})"
        for bench, d in pair["by_benchmark"].items():
            metrics.update(
                {
                    f"paired/{name}/{bench}/delta": d["difference"],
                    f"paired/{name}/{bench}/low": d["ci"][0],
                    f"paired/{name}/{bench}/high": d["ci"][1],
                    f"paired/{name}/{bench}/problems": d["problems"],
                }
            )
    return metrics


PAIRED_CELLS = (
    "Δ pass@1 [bootstrap interval over problems] (problems solved only by the checkpoint / only by the other)"
)


def paired_rows(pairs: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    benchmarks = sorted({b for pair in pairs for b in pair["by_benchmark"]} - {"all"}) + ["all"]
    header = ["checkpoint", "vs", "variant"] + [f"Δ pass@1 {b}" for b in benchmarks]  # what a cell holds: PAIRED_CELLS
    rows = []
    for pair in pairs:
        row = [pair["checkpoint"], pair["baseline"], pair["variant"]]
        for bench in benchmarks:
            d = pair["by_benchmark"].get(bench)
            row.append(
                "–"
                if d is None
                else f"{d['difference']:+.3f} [{d['ci'][0]:+.2f}, {d['ci'][1]:+.2f}] ({d['only_ours']}/{d['only_theirs']})"
            )
        rows.append(row)
    return header, rows


def fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def comparison_rows(reports: list[dict[str, Any]], labels: list[str]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the comparison table: one row per evaluated (checkpoint, variant)."""
    benchmarks = sorted({name for r in reports for name in r["pass_at_k"]} - {"all"}) + ["all"]
    header = ["checkpoint", "variant"] + [f"pass@1 {b}" for b in benchmarks]
    header += ["upfront think", "inline think", "blocks/resp", "think tokens", "entropy at sites / elsewhere"]
    rows = []
    for label, report in zip(labels, reports):
        row = [label, report["variant"]["name"]]
        for bench in benchmarks:
            scores = report["pass_at_k"].get(bench)
            row.append(
                "–"
                if scores is None
                else f"{scores['pass@1']:.3f} [{scores['pass@1_ci'][0]:.2f}, {scores['pass@1_ci'][1]:.2f}]"
            )
        thinking, entropy = report["thinking"], report["entropy"] or {}
        row += [
            fmt(thinking["upfront_think_rate"], 2),
            fmt(thinking["inline_think_rate"], 2),
            fmt(thinking["inline_blocks_per_response"], 2),
            fmt(thinking["think_tokens_mean"], 1),
        ]
        sites, elsewhere = entropy.get("entropy_think_sites"), entropy.get("entropy_elsewhere")
        ratio, interval = entropy.get("entropy_ratio"), entropy.get("entropy_ratio_ci")
        ratio_text = (
            ""
            if ratio is None
            else f", ratio {ratio:.2f}" + (f" [{interval[0]:.2f}, {interval[1]:.2f}]" if interval else "")
        )
        row.append(
            f"{fmt(sites, 2)} / {fmt(elsewhere, 2)}{ratio_text} ({entropy.get('think_sites', 0)} sites)"
            if sites is not None
            else "no think sites"
        )
        rows.append(row)
    return header, rows


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def draw_pass_at_1(reports: list[dict[str, Any]], labels: list[str], path: Path) -> None:
    """Grouped bars: pass@1 per benchmark, one bar per evaluated (checkpoint, variant), with its
    interval and value written on it; the y axis stretches to the largest interval so small
    scores stay readable, and a zero score still shows its label."""
    plt = pyplot()
    benchmarks = sorted({name for r in reports for name in r["pass_at_k"]} - {"all"}) + ["all"]
    width = 0.8 / len(reports)
    figure, axes = plt.subplots(figsize=(max(6.0, 1.6 * len(benchmarks) + 0.4 * len(reports)), 4.2), dpi=110)
    top = 0.0
    for index, (label, report) in enumerate(zip(labels, reports)):
        xs, heights, errors = [], [], [[], []]
        for position, bench in enumerate(benchmarks):
            scores = report["pass_at_k"].get(bench)
            if scores is None:
                continue
            low, high = scores["pass@1_ci"]
            xs.append(position + (index - (len(reports) - 1) / 2) * width)
            heights.append(scores["pass@1"])
            errors[0].append(scores["pass@1"] - low)
            errors[1].append(high - scores["pass@1"])
            top = max(top, high)
        bars = axes.bar(
            xs, heights, width=width * 0.95, yerr=errors, capsize=3, label=f"{label} ({report['variant']['name']})"
        )
        axes.bar_label(bars, labels=[f"{h:.2f}" for h in heights], fontsize=7, padding=2)
    sizes = {
        bench: next(r["pass_at_k"][bench]["problems"] for r in reports if bench in r["pass_at_k"])
        for bench in benchmarks
    }
    axes.set_xticks(range(len(benchmarks)), [f"{bench}\n({sizes[bench]} problems)" for bench in benchmarks])
    axes.set_ylabel("pass@1")
    axes.set_ylim(0, min(1.0, max(0.1, top * 1.25)))
    axes.set_title("pass@1 per benchmark (whiskers: bootstrap interval over problems)", fontsize=10)
    axes.grid(axis="y", alpha=0.3)
    axes.legend(fontsize=8, loc="upper right")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def draw_entropy(entropies: list[list[dict[str, list[float]]]], labels: list[str], path: Path) -> bool:
    """Histograms of next-token entropy at think sites vs other code positions, one panel per
    evaluation that has think sites; False (nothing drawn) when none has."""
    panels = [(label, values) for label, values in zip(labels, entropies) if any(v["sites"] for v in values)]
    if not panels:
        return False
    plt = pyplot()
    figure, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.8), dpi=110, squeeze=False)
    for axis, (label, values) in zip(axes[0], panels):
        sites = [x for v in values for x in v["sites"]]
        elsewhere = [x for v in values for x in v["elsewhere"]]
        top = max(sites + elsewhere) or 1.0
        bins = [top * i / 20 for i in range(21)]
        axis.hist(elsewhere, bins=bins, density=True, alpha=0.55, label=f"other code positions ({len(elsewhere)})")
        axis.hist(sites, bins=bins, density=True, alpha=0.55, label=f"think sites ({len(sites)})")
        axis.set_title(label, fontsize=10)
        axis.set_xlabel("next-token entropy (nats)")
        axis.set_ylabel("density")
        axis.legend(fontsize=7)
    figure.suptitle("Entropy where the model chose to think vs elsewhere in its code")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return True


def draw_think_tokens(reports: list[dict[str, Any]], labels: list[str], path: Path) -> None:
    """Accuracy per band of tokens spent thinking (the overthinking view); every band on the x axis,
    a point where an evaluation has samples in it, marked with how many."""
    from tasks.evaluation.think_stats import bucket_labels

    plt = pyplot()
    bands = bucket_labels()
    figure, axes = plt.subplots(figsize=(6.5, 4), dpi=110)
    top = 0.0
    for label, report in zip(labels, reports):
        found = report["thinking"]["accuracy_by_think_tokens"]
        xs = [bands.index(band) for band in found]
        ys = [entry["accuracy"] for entry in found.values()]
        (line,) = axes.plot(xs, ys, marker="o", label=f"{label} ({report['variant']['name']})")
        for x, y, entry in zip(xs, ys, found.values()):
            axes.annotate(
                f"n={entry['samples']}",
                (x, y),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize=7,
                color=line.get_color(),
            )
        top = max([top] + ys)
    axes.set_xticks(range(len(bands)), bands)
    axes.set_xlabel("tokens spent thinking per response (upfront + inline)")
    axes.set_ylabel("share of samples passing")
    axes.set_ylim(0, min(1.0, max(0.1, top * 1.25)))
    axes.set_title("Accuracy by thinking tokens", fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


@stage("compare_evaluations", inputs={"report_": "report_ids"})
def compare_evaluations(report_ids: list[str], labels: list[str]) -> str:
    """comparison.json, comparison.md and PNG plots over the given evaluation reports."""
    with StageRun() as run:
        loaded = [load_report(run.input_path(name)) for name in run.inputs]
        reports, entropies = [r for r, _ in loaded], [e for _, e in loaded]
        header, rows = comparison_rows(reports, labels)
        pairs = paired_comparisons(reports, [load_problem_rows(run.input_path(name)) for name in run.inputs], labels)
        paired_header, paired = paired_rows(pairs)
        table = markdown_table(header, rows)
        if pairs:
            table += f"\n\nPaired on the same problems, each cell: {PAIRED_CELLS}.\n\n" + markdown_table(
                paired_header, paired
            )
        staged = run.staging("comparison")
        draw_pass_at_1(reports, labels, staged / "pass_at_1.png")
        draw_think_tokens(reports, labels, staged / "think_tokens.png")
        titles = [f"{label} ({report['variant']['name']})" for label, report in zip(labels, reports)]
        draw_entropy(
            entropies, titles, staged / "entropy.png"
        )  # none when no response placed an inline thought in its code
        (staged / "comparison.md").write_text(table + "\n")
        (staged / "comparison.json").write_text(
            json.dumps(
                {
                    "header": header,
                    "rows": rows,
                    "reports": dict(zip(labels, report_ids)),
                    "paired_header": paired_header,
                    "paired_rows": paired,
                    "paired": pairs,
                },
                indent=1,
            )
        )
        comparison_id = run.output(
            "comparison",
            staged,
            kind="report",
            name="evaluation-comparison",
            metadata={"reports": report_ids, "labels": labels},
            metrics={"evaluations": len(report_ids), **paired_metrics(pairs)},
        )
        return comparison_id
