"""The gate's statistics against values from tables and hand counts."""

from __future__ import annotations

import math
import random

import pytest

from gatewaybench.gate import stats
from gatewaybench.stats import t_quantile


def test_log_ratios_are_positive_when_the_candidate_is_worse() -> None:
    lower = stats.log_ratios([(100.0, 115.0), (100.0, 90.0)], higher_is_better=False)
    assert lower == pytest.approx([math.log(1.15), math.log(0.9)])
    higher = stats.log_ratios([(1000.0, 850.0), (1000.0, 1100.0)], higher_is_better=True)
    assert higher[0] > 0 and higher[1] < 0
    assert higher == pytest.approx([-math.log(0.85), -math.log(1.1)])


@pytest.mark.parametrize("pair", [(0.0, 1.0), (1.0, -2.0), (math.nan, 1.0), (1.0, math.inf)])
def test_log_ratios_reject_values_without_a_logarithm(pair: tuple[float, float]) -> None:
    with pytest.raises(ValueError, match="positive"):
        stats.log_ratios([pair], higher_is_better=False)


def test_percent_worse() -> None:
    assert stats.percent_worse(math.log(1.15)) == pytest.approx(15.0)
    assert stats.percent_worse(math.log(0.88)) == pytest.approx(-12.0)
    assert stats.percent_worse(0.0) == 0.0
    assert math.isnan(stats.percent_worse(math.nan))


def test_sign_test_exact_values() -> None:
    assert stats.sign_test_p([0.1] * 7) == 1 / 128
    assert stats.sign_test_p([0.1, 0.2, 0.3, -0.1, 0.0]) == 5 / 16  # zero dropped: 3 of 4
    assert stats.sign_test_p([-0.1] * 5) == 1.0
    assert stats.sign_test_p([]) == 1.0
    assert stats.sign_test_p([1e-15, -1e-14]) == 1.0  # float noise counts as a tie


def test_wilcoxon_all_positive_matches_the_table() -> None:
    assert stats.wilcoxon_p([0.01 * i for i in range(1, 8)]) == 0.0078125  # 1/128
    assert stats.wilcoxon_p([0.01 * i for i in range(1, 11)]) == 1 / 1024
    assert stats.wilcoxon_p([-0.01 * i for i in range(1, 11)]) == 1.0


def test_wilcoxon_critical_value_n10() -> None:
    # Tables: n = 10, one-sided alpha = 0.01, critical T = 5: P(W- <= 5) = 10/1024.
    d = [0.01 * i for i in range(1, 11)]
    d[4] = -d[4]  # rank 5 negative
    assert stats.wilcoxon_p(d) == 10 / 1024
    d[4], d[5] = -d[4], -d[5]  # rank 6 negative instead: no longer significant at 0.01
    assert stats.wilcoxon_p(d) == 14 / 1024 > 0.01


def test_wilcoxon_one_small_negative_of_eight() -> None:
    d = [0.1, -0.01, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
    assert stats.wilcoxon_p(d) == 2 / 256


def test_wilcoxon_ties_share_average_ranks_and_zeros_are_dropped() -> None:
    # |d| = 1, 1, 1, 2 -> ranks 2, 2, 2, 4; W+ = 8. Of the 16 sign patterns, W+ >= 8 for
    # {2,2,4} three ways and {2,2,2,4} once.
    assert stats.average_ranks([1.0, 1.0, 1.0, 2.0]) == [2.0, 2.0, 2.0, 4.0]
    assert stats.wilcoxon_p([0.1, 0.1, -0.1, 0.2, 0.0]) == 4 / 16
    assert stats.average_ranks([3.0, 1.0, 2.0, 2.0]) == [4.0, 1.0, 2.5, 2.5]
    assert stats.wilcoxon_p([0.0, 0.0]) == 1.0


def test_wilcoxon_normal_approximation_is_close_to_exact_at_the_switch() -> None:
    rng = random.Random(7)
    d = [rng.gauss(0.02, 0.05) for _ in range(stats.EXACT_MAX_N)]
    ranks = stats.average_ranks([abs(x) for x in d])
    w_plus = sum(r for r, x in zip(ranks, d, strict=True) if x > 0)
    exact = stats.wilcoxon_p(d)
    assert stats._normal_upper_tail(ranks, w_plus) == pytest.approx(exact, abs=0.003)
    assert 0.0 < stats.wilcoxon_p([*d, 0.5]) < exact  # n = 51 uses the approximation


def test_median_and_its_order_statistic_interval() -> None:
    assert stats.median([3.0, 1.0, 2.0]) == 2.0
    assert math.isnan(stats.median([]))
    ci = stats.median_ci([float(i) for i in range(10)])  # ranks 2 and 9 from the table
    assert (ci.low, ci.high, ci.coverage) == (1.0, 8.0, 1 - 22 / 1024)
    ci = stats.median_ci([float(i) for i in range(20)])  # ranks 6 and 15
    assert (ci.low, ci.high) == (5.0, 14.0) and ci.coverage >= 0.95
    ci = stats.median_ci([5.0, 1.0, 3.0, 2.0, 4.0, 0.0, 6.0, 7.0])  # n = 8: only the range
    assert (ci.low, ci.high, ci.coverage) == (0.0, 7.0, 1 - 2 / 256)
    short = stats.median_ci([1.0, 2.0, 3.0, 4.0, 5.0])  # too few for 95 %: says so
    assert (short.low, short.high) == (1.0, 5.0) and short.coverage == 1 - 2 / 32 < 0.95
    assert math.isnan(stats.median_ci([]).low)


def test_welch_interval() -> None:
    w = stats.welch_interval([1.0, 2.0, 3.0], [2.0, 3.0, 5.0])
    se = math.sqrt(1 / 3 + (7 / 3) / 3)
    assert w.diff == pytest.approx(4 / 3)
    assert w.df == pytest.approx((10 / 9) ** 2 / ((1 / 9) / 2 + (49 / 81) / 2))
    assert w.high - w.diff == pytest.approx(t_quantile(0.975, w.df) * se)
    assert w.p_two_sided == pytest.approx(0.2846, abs=1e-3)
    same = stats.welch_interval([2.0, 2.0], [3.0, 3.0])
    assert (same.low, same.high, same.p_two_sided) == (1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="two values"):
        stats.welch_interval([1.0], [1.0, 2.0])
