"""Pure statistics for the gate: paired log-ratios, exact one-sided sign and Wilcoxon signed-rank
tests, a distribution-free confidence interval for the median, and a Welch t-interval.

Everything is deterministic (no bootstrap, no random numbers) and exact where it is cheap: a
gate that flips its verdict on a re-run of the same numbers would be worse than no gate.

Sign convention: a log-ratio d is POSITIVE when the candidate is WORSE than the base, whatever
the metric's direction, so every test here has one alternative, "the candidate is worse"; the
opposite question is asked by negating the ratios.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from gatewaybench.stats import t_cdf, t_quantile

# Above this many non-zero differences the Wilcoxon p-value comes from the normal approximation;
# below it the exact distribution is a few thousand integer additions.
EXACT_MAX_N = 50

# |d| values equal to this many decimals are ties, and smaller ones are zeros: log-ratios of
# equal floats computed along different paths may differ in the last bit.
TIE_DECIMALS = 12


def log_ratios(pairs: Sequence[tuple[float, float]], higher_is_better: bool) -> list[float]:
    """d = ln(cand/base) per (base, cand) pair, negated for higher-is-better metrics so that a
    positive d always means the candidate is worse."""
    out = []
    for base, cand in pairs:
        if not (_positive(base) and _positive(cand)):
            raise ValueError(f"log-ratio needs positive values, got base={base!r} cand={cand!r}")
        d = math.log(cand / base)
        out.append(-d if higher_is_better else d)
    return out


def _positive(value: float) -> bool:
    return math.isfinite(value) and value > 0


def percent_worse(log_ratio: float) -> float:
    """A sign-adjusted log-ratio as a percent: 100*(exp(m)-1); negative means better.

    For a lower-is-better metric this is the candidate's change (cand/base - 1). For a
    higher-is-better one it is base/cand - 1, the change in its reciprocal: a 15 % drop in
    requests/sec is 17.6 % more time per request. Both are "how much more it costs".
    """
    return 100.0 * math.expm1(log_ratio)


def _checked(d: Sequence[float]) -> list[float]:
    if any(math.isnan(x) for x in d):
        raise ValueError("NaN among the differences")
    return [round(x, TIE_DECIMALS) for x in d]


def _nonzero(d: Sequence[float]) -> list[float]:
    return [x for x in _checked(d) if x != 0]


def _binomial_upper_tail(n: int, k: int) -> float:
    """P(X >= k) for X ~ Binomial(n, 1/2), exactly (integer counts, one division)."""
    if k <= 0:
        return 1.0
    return sum(math.comb(n, i) for i in range(k, n + 1)) / (1 << n)


def sign_test_p(d: Sequence[float]) -> float:
    """Exact one-sided sign test, H1: differences tend to be positive (worse); zeros dropped."""
    values = _nonzero(d)
    positives = sum(1 for x in values if x > 0)
    return _binomial_upper_tail(len(values), positives)


def average_ranks(values: Sequence[float]) -> list[float]:
    """Ranks 1..n of `values` in their own order, tied values sharing their average rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for i in order[start : end + 1]:
            ranks[i] = (start + end) / 2 + 1  # positions start..end hold ranks start+1..end+1
        start = end + 1
    return ranks


def wilcoxon_p(d: Sequence[float]) -> float:
    """One-sided Wilcoxon signed-rank test, H1: differences tend to be positive (worse).

    Zeros are dropped and tied |d| share their average rank. For up to EXACT_MAX_N differences
    the p-value is exact under the observed tie pattern; above, a normal approximation with
    continuity and tie correction.
    """
    values = _nonzero(d)
    if not values:
        return 1.0
    ranks = average_ranks([abs(x) for x in values])
    w_plus = sum(r for r, x in zip(ranks, values, strict=True) if x > 0)
    if len(values) <= EXACT_MAX_N:
        return _exact_upper_tail(ranks, w_plus)
    return _normal_upper_tail(ranks, w_plus)


def _exact_upper_tail(ranks: Sequence[float], w_plus: float) -> float:
    """P(W+ >= w_plus) when each rank's sign is + or - with probability 1/2, independently.

    Average ranks are multiples of 1/2, so doubled ranks are integers and the distribution is a
    count per doubled sum (Python ints: exact for any n).
    """
    doubled = [round(2 * r) for r in ranks]
    counts = [1] + [0] * sum(doubled)
    reached = 0
    for r in doubled:
        reached += r
        for s in range(reached, r - 1, -1):  # downwards: each rank is used at most once
            counts[s] += counts[s - r]
    threshold = round(2 * w_plus)
    return sum(counts[threshold:]) / (1 << len(ranks))


def _normal_upper_tail(ranks: Sequence[float], w_plus: float) -> float:
    n = len(ranks)
    mean = n * (n + 1) / 4
    tie_sizes: dict[float, int] = {}
    for r in ranks:
        tie_sizes[r] = tie_sizes.get(r, 0) + 1
    tie_term = sum(t**3 - t for t in tie_sizes.values()) / 48
    sd = math.sqrt(n * (n + 1) * (2 * n + 1) / 24 - tie_term)
    z = (w_plus - mean - 0.5) / sd  # continuity: P(W >= w) ~ P(Z >= w - 1/2)
    return 0.5 * math.erfc(z / math.sqrt(2))


def median(values: Sequence[float]) -> float:
    """The median; NaN for no values (callers report "n/a" rather than fail)."""
    return statistics.median(values) if values else math.nan


@dataclass(frozen=True)
class MedianCI:
    low: float
    high: float
    coverage: float  # achieved, >= the nominal level when there are enough values
    nominal: float


def median_ci(values: Sequence[float], confidence: float = 0.95) -> MedianCI:
    """Distribution-free interval [x_(k), x_(n+1-k)] for the median from order statistics.

    Its coverage is 1 - 2 P(B <= k-1), B ~ Binomial(n, 1/2); k is the largest index still
    reaching `confidence`. With too few values for that (n < 6 at 95 %) the interval is the
    whole range and the achieved coverage, below nominal, says so.
    """
    xs = sorted(values)
    n = len(xs)
    if n == 0:
        return MedianCI(math.nan, math.nan, math.nan, confidence)
    best = 1
    for k in range(1, (n + 1) // 2 + 1):
        if _order_coverage(n, k) < confidence:
            break  # coverage only falls as k grows
        best = k
    return MedianCI(xs[best - 1], xs[n - best], _order_coverage(n, best), confidence)


def _order_coverage(n: int, k: int) -> float:
    return 1.0 - 2.0 * (1.0 - _binomial_upper_tail(n, k))


@dataclass(frozen=True)
class WelchInterval:
    diff: float  # mean(b) - mean(a)
    low: float
    high: float
    df: float
    p_two_sided: float


def welch_interval(
    a: Sequence[float], b: Sequence[float], confidence: float = 0.95
) -> WelchInterval:
    """Welch's t-interval for mean(b) - mean(a); each side needs at least two values."""
    if len(a) < 2 or len(b) < 2:
        raise ValueError("Welch's interval needs at least two values per side")
    diff = statistics.fmean(b) - statistics.fmean(a)
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:  # identical repeats on both sides: the difference is known exactly
        return WelchInterval(diff, diff, diff, math.inf, 0.0 if diff else 1.0)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = t_quantile(0.5 + confidence / 2, df) * se
    p = 2 * (1 - t_cdf(abs(diff) / se, df))
    return WelchInterval(diff, diff - half, diff + half, df, p)


def mean_upper_bound(d: Sequence[float], confidence: float = 0.95) -> float:
    """One-sided upper confidence bound of the mean of d (Student's t); NaN below 2 values.
    The non-inferiority question: how much worse could the candidate be, given these pairs?"""
    if len(d) < 2:
        return math.nan
    n = len(d)
    spread = statistics.stdev(d) / math.sqrt(n)
    return statistics.fmean(d) + t_quantile(confidence, n - 1) * spread
