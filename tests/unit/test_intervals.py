"""The bootstrap intervals (scipy.stats.bootstrap underneath): seeded, around the estimate, degenerate
where the data cannot vary, and a resampled unit keeps all its values together."""

import pytest

from tasks.intervals import mean_interval, stratified_difference_interval, unit_interval


def test_the_mean_interval_is_seeded_and_surrounds_the_mean():
    values = [1.0] * 30 + [0.0] * 70
    low, high = mean_interval(values, 1000, 0.95, seed=0)
    assert low < 0.3 < high and 0.15 < low and high < 0.45
    assert mean_interval(values, 1000, 0.95, seed=0) == (low, high)
    assert mean_interval([0.5, 0.5, 0.5], 1000, 0.95, seed=0) == (0.5, 0.5)
    with pytest.raises(ValueError):
        mean_interval([], 1000, 0.95, seed=0)


def test_a_unit_keeps_its_values_together():
    # each unit holds a numerator and a denominator: the pooled ratio never sees one without the other
    units = [(2.0, 1.0), (4.0, 2.0), (6.0, 3.0), (8.0, 4.0)]
    low, high = unit_interval(
        len(units), lambda picks: sum(units[i][0] for i in picks) / sum(units[i][1] for i in picks), 500, 0.95, seed=1
    )
    assert low == high == pytest.approx(2.0)


def test_independent_samples_are_resampled_apart():
    low, high = stratified_difference_interval([([0.0, 0.1, 0.2, 0.1], [0.5, 0.6, 0.4, 0.5])], 2000, 0.95, seed=0)
    assert 0.2 < low < 0.4 < high < 0.6
    assert stratified_difference_interval([([0.2], [0.7])], 100, 0.95, seed=0) == pytest.approx((0.5, 0.5))
