"""Every bootstrap interval of the project, through ``scipy.stats.bootstrap`` (percentile method, a
seeded generator): the mean of values, a statistic of resampled units (problems, responses, judged
pairs: every value of a unit moves with it, so paired data stay paired), and the difference of two
independent samples (each resampled on its own, stratified when there are several pairs of them)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def percentile_interval(distribution: np.ndarray, confidence: float) -> tuple[float, float]:
    """The central ``confidence`` share of a bootstrap distribution (resamples whose statistic is
    undefined, e.g. a ratio over a zero, are left out)."""
    finite = np.asarray(distribution, dtype=float)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return float("nan"), float("nan")
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    return float(low), float(high)


def _bootstrap(data: tuple[np.ndarray, ...], statistic, resamples: int, confidence: float, seed: int, vectorized: bool):
    from scipy.stats import bootstrap

    return bootstrap(
        data,
        statistic,
        n_resamples=resamples,
        confidence_level=confidence,
        method="percentile",
        vectorized=vectorized,
        random_state=np.random.default_rng(seed),
    )


def mean_interval(values: Sequence[float], resamples: int, confidence: float, seed: int) -> tuple[float, float]:
    """Interval of the mean, resampling the values with replacement (values that are all equal: that value)."""
    array = np.asarray(values, dtype=float)
    if array.size == 0:
        raise ValueError("a bootstrap interval needs at least one value")
    if array.size < 2 or np.all(array == array[0]):
        return float(array.mean()), float(array.mean())
    result = _bootstrap((array,), np.mean, resamples, confidence, seed, vectorized=True)
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def unit_interval(
    units: int, statistic: Callable[[np.ndarray], float], resamples: int, confidence: float, seed: int
) -> tuple[float, float]:
    """Interval of ``statistic(indices)`` over ``units`` resampled with replacement: the statistic reads
    whatever belongs to each drawn index (a pooled ratio, a kappa over judged pairs)."""
    if units < 2:
        value = float(statistic(np.arange(units)))
        return value, value
    result = _bootstrap((np.arange(units),), statistic, resamples, confidence, seed, vectorized=False)
    return percentile_interval(result.bootstrap_distribution, confidence)


def stratified_difference_interval(
    pairs: Sequence[tuple[Sequence[float], Sequence[float]]], resamples: int, confidence: float, seed: int
) -> tuple[float, float]:
    """Interval of the mean over strata of mean(after) − mean(before), each of the 2 × strata samples
    resampled on its own (one stratum: two independent samples, e.g. RL's first and last quarter)."""
    # a one-value sample resamples to itself: two copies of it resample the same and let scipy take it
    samples = tuple(
        np.repeat(a, 2) if a.size == 1 else a for a in (np.asarray(s, dtype=float) for pair in pairs for s in pair)
    )

    def statistic(*drawn, axis=-1):
        befores, afters = drawn[0::2], drawn[1::2]
        return np.mean([a.mean(axis=axis) - b.mean(axis=axis) for b, a in zip(befores, afters)], axis=0)

    if all(sample.size < 2 or np.all(sample == sample[0]) for sample in samples):
        value = float(statistic(*samples))
        return value, value
    result = _bootstrap(samples, statistic, resamples, confidence, seed, vectorized=True)
    return percentile_interval(result.bootstrap_distribution, confidence)
