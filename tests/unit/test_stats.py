"""Student's t (gatewaybench.stats) against published tables, and the capacity intervals that
use it."""

from __future__ import annotations

import math
import statistics

import pytest

from gatewaybench.analysis.capacity import estimate
from gatewaybench.stats import t_cdf, t_quantile

# t_0.975 from the standard two-sided 95 % table, by degrees of freedom.
T_975 = {1: 12.706, 2: 4.303, 4: 2.776, 10: 2.228, 29: 2.045, 30: 2.042, 31: 2.040, 40: 2.021,
         60: 2.000, 120: 1.980, math.inf: 1.960}  # fmt: skip


@pytest.mark.parametrize(("df", "expected"), T_975.items())
def test_t_quantile_matches_the_table(df: float, expected: float) -> None:
    assert t_quantile(0.975, df) == pytest.approx(expected, abs=1e-3)


def test_t_quantile_inverts_t_cdf() -> None:
    assert t_quantile(0.025, 4) == pytest.approx(-2.776, abs=1e-3)
    assert t_quantile(0.5, 7) == 0.0
    assert t_cdf(0.0, 3) == 0.5
    assert t_cdf(2.0, 5) == pytest.approx(1 - 0.05097, abs=1e-5)
    for df in (1, 3, 30, 200):
        assert t_cdf(t_quantile(0.9, df), df) == pytest.approx(0.9, abs=1e-12)
    with pytest.raises(ValueError, match="probability"):
        t_quantile(1.0, 3)


def test_t_quantile_falls_smoothly_past_30_degrees_of_freedom() -> None:
    drops = [t_quantile(0.975, df) - t_quantile(0.975, df + 1) for df in range(25, 45)]
    assert all(0 < drop < 0.01 for drop in drops)  # no jump to the normal 1.96 at 30


@pytest.mark.parametrize("n", [2, 11, 31, 41, 121])
def test_capacity_interval_uses_the_exact_t(n: int) -> None:
    values = [float(i % 7) for i in range(n)]
    est = estimate(values)
    se = statistics.stdev(values) / math.sqrt(n)
    assert est.half_width == pytest.approx(T_975[n - 1] * se, rel=1e-3)
