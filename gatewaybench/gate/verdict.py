"""The gate's decision per server and metric, from pairs of baseline (A) and candidate (B)
trials run on the same machine, in one of two designs:

- DUET: every trial measures both sides at the same time; a trial is one pair, and whatever the
  host does during it hits both sides alike.
- SEQUENTIAL: one side at a time, in blocks A B B A; each block gives two pairs, (A1, B1) and
  (A2, B2), adjacent in time, so slow drift of the machine cancels within a pair.

"No regression" is said only when the pairs rule one out: the one-sided 95 % upper bound of the
paired change must sit below the regression threshold. When the noise is too high for that, or
the trials differ wildly, the gate says "inconclusive" instead of guessing.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from gatewaybench.gate import stats

BASE = "base"
CAND = "cand"
GUARD = "guard"  # the pseudo-metric of the absolute guards

# Metric -> higher is better. Latencies and CPU are measured at the sub-knee load, the plateau
# above the knee.
METRICS: Mapping[str, bool] = {
    "latency_p50_ms": False,
    "latency_p95_ms": False,
    "cpu_ms_per_req": False,
    "plateau_rps": True,
}
# The metrics that decide whether the gate can answer at all. Server CPU per request and the
# requests/sec plateau are capacity figures, measured within a few percent from one fresh stack
# to the next even on a shared 2-core runner. Latency below the knee moves 9-40 % between
# identical trials there (scheduling of a dozen processes on two cores): it is judged too, and a
# significant regression of it fails the gate, but when it is too noisy to vouch for "no change"
# it says so (NOT_JUDGED) instead of making every gate inconclusive.
DECIDING: tuple[str, ...] = ("cpu_ms_per_req", "plateau_rps")


class Design(StrEnum):
    DUET = "duet"  # both sides at once, one pair per trial (block k: base 0, cand 1)
    SEQUENTIAL = "sequential"  # one side at a time, A B B A blocks, two pairs per block


class Verdict(StrEnum):
    REGRESSION = "regression"
    WARN = "warn"
    INCONCLUSIVE = "inconclusive"
    NOT_JUDGED = "not_judged"  # a metric that does not decide, too noisy or short of pairs
    BETTER = "better"
    NO_CHANGE = "no_change"


@dataclass(frozen=True)
class GateThresholds:
    regress_pct: float = 10.0  # median percent worse above which a significant change fails
    warn_pct: float = 5.0  # ... and above which it is reported (also the "better" threshold)
    alpha: float = 0.01  # one-sided significance level of the Wilcoxon test
    min_pairs: int = 7  # fewer usable pairs cannot reach alpha (n=6: p >= 1/64)
    # Base-vs-base median difference beyond which nothing is judged. The bound below decides
    # whether the pairs can vouch for "no regression"; this only refuses trials so unlike each
    # other that pairing them means nothing.
    max_noise_pct: float = 20.0
    bound_confidence: float = 0.95  # of the one-sided upper bound that must clear regress_pct
    guard_fail_pct: float = 1.0  # any candidate trial failing this share of requests fails


DEFAULT_THRESHOLDS = GateThresholds()
# A duet cancels much of the host's noise (docs/gate.md has the base-vs-base figures of both
# designs), so it holds a regression to 5 %; the sequential design keeps 10 %.
DESIGN_THRESHOLDS = {
    Design.DUET: GateThresholds(regress_pct=5.0, warn_pct=2.5),
    Design.SEQUENTIAL: DEFAULT_THRESHOLDS,
}


@dataclass(frozen=True)
class Trial:
    """One trial of one side and server. SEQUENTIAL: `position` is 0..3 within its block, in the
    order run (A B B A is base 0, cand 1, cand 2, base 3); positions 0-1 and 2-3 form the
    block's two pairs. DUET: a block is one trial of both sides at once, base 0 and cand 1."""

    side: str  # BASE or CAND
    block: int
    position: int
    values: Mapping[str, float]
    valid: bool = True
    invalid_reason: str = ""
    fail_pct: float = 0.0  # at the sub-knee load
    http_5xx: int = 0  # at the sub-knee load
    app_cpus: str = ""  # the cores the app server was pinned to, as read back ("": not pinned)
    started_first: bool = True  # duet: this side's stack and steps started before the other's

    def __post_init__(self) -> None:
        if self.side not in (BASE, CAND):
            raise ValueError(f"trial side must be {BASE!r} or {CAND!r}, got {self.side!r}")
        if not 0 <= self.position <= 3:
            raise ValueError(f"trial position must be 0..3, got {self.position}")

    @property
    def label(self) -> str:
        return f"{self.side} trial at block {self.block} position {self.position}"

    def value(self, metric: str) -> float:
        """The metric's value, NaN when missing."""
        return float(self.values.get(metric, math.nan))


@dataclass(frozen=True)
class MetricResult:
    server: str
    metric: str
    verdict: Verdict
    median_change_pct: float  # percent worse (negative: better), NaN when there is none
    ci_low_pct: float
    ci_high_pct: float
    p_value: float  # one-sided, in the direction of the median change
    pairs: int
    noise_pct: float
    message: str
    # one-sided upper confidence bound of the mean paired change (percent worse); 'no change'
    # needs it below the threshold. NaN where no pairs were judged (compare, guards).
    bound_pct: float = math.nan


@dataclass(frozen=True)
class Pairing:
    pairs: tuple[tuple[Trial, Trial], ...]  # (base, cand) with both trials valid, in run order
    expected: int  # two per block
    incomplete: int  # pairs missing a trial or not one base and one cand


def pairs_of(trials: Sequence[Trial], design: Design) -> Pairing:
    return abba_pairs(trials) if design == Design.SEQUENTIAL else duet_pairs(trials)


def duet_pairs(trials: Sequence[Trial]) -> Pairing:
    """(base, cand) of every duet trial; a pair with an invalid side is left out."""
    pairs: list[tuple[Trial, Trial]] = []
    blocks = _blocks(trials)
    incomplete = 0
    for block in blocks.values():
        pair = _as_pair([block[p] for p in (0, 1) if p in block])
        if pair is None or len(block) != 2:
            incomplete += 1
        elif pair[0].valid and pair[1].valid:
            pairs.append(pair)
    return Pairing(tuple(pairs), len(blocks), incomplete)


def abba_pairs(trials: Sequence[Trial]) -> Pairing:
    """(A1, B1), (A2, B2) of every block; a pair with an invalid trial is left out."""
    pairs: list[tuple[Trial, Trial]] = []
    blocks = _blocks(trials)
    incomplete = 0
    for block in blocks.values():
        for positions in ((0, 1), (2, 3)):
            half = [block[p] for p in positions if p in block]
            pair = _as_pair(half)
            if pair is None:
                incomplete += 1
            elif pair[0].valid and pair[1].valid:
                pairs.append(pair)
    return Pairing(tuple(pairs), 2 * len(blocks), incomplete)


def _blocks(trials: Iterable[Trial]) -> dict[int, dict[int, Trial]]:
    blocks: dict[int, dict[int, Trial]] = defaultdict(dict)
    for trial in trials:
        if trial.position in blocks[trial.block]:
            raise ValueError(f"two trials at block {trial.block} position {trial.position}")
        blocks[trial.block][trial.position] = trial
    return dict(sorted(blocks.items()))


def _as_pair(half: Sequence[Trial]) -> tuple[Trial, Trial] | None:
    sides = {t.side: t for t in half}
    if len(half) != 2 or len(sides) != 2:
        return None
    return sides[BASE], sides[CAND]


def base_noise_pct(trials: Sequence[Trial], metric: str) -> float:
    """Median over blocks of |ln(A2/A1)| as a percent; NaN when no block has two valid A."""
    spreads = []
    for block in _blocks(trials).values():
        values = [
            t.value(metric)
            for _, t in sorted(block.items())
            if t.side == BASE and t.valid and _usable(t.value(metric))
        ]
        if len(values) == 2:
            spreads.append(abs(math.log(values[1] / values[0])))
    return stats.percent_worse(stats.median(spreads))


def pair_noise_pct(d: Sequence[float]) -> float:
    """The spread of paired log-ratios: their median absolute deviation from their median, as a
    percent (NaN with fewer than two). A duet's base-vs-base noise: how far one simultaneous
    pair strays from the others, on the scale of the sequential design's |ln(A2/A1)|."""
    if len(d) < 2:
        return math.nan
    centre = stats.median(d)
    return stats.percent_worse(stats.median([abs(x - centre) for x in d]))


def _usable(value: float) -> bool:
    return math.isfinite(value) and value > 0


@dataclass(frozen=True)
class _Summary:
    change_pct: float
    ci_low_pct: float
    ci_high_pct: float
    coverage: float
    p_worse: float
    p_better: float
    n: int
    upper_pct: float  # one-sided upper confidence bound of the mean change, percent worse

    @property
    def p_value(self) -> float:
        return self.p_better if self.change_pct < 0 else self.p_worse

    def text(self) -> str:
        if self.n == 0:
            return "no usable pairs"
        return (
            f"{describe_change(self.change_pct)} (median of {self.n} pairs, "
            f"{100 * self.coverage:.1f} % CI "
            f"{format_pct(self.ci_low_pct)} … {format_pct(self.ci_high_pct)})"
        )


def _summarise(d: Sequence[float], bound_confidence: float) -> _Summary:
    ci = stats.median_ci(d)
    return _Summary(
        change_pct=stats.percent_worse(stats.median(d)),
        ci_low_pct=stats.percent_worse(ci.low),
        ci_high_pct=stats.percent_worse(ci.high),
        coverage=ci.coverage,
        p_worse=stats.wilcoxon_p(d),
        p_better=stats.wilcoxon_p([-x for x in d]),
        n=len(d),
        upper_pct=stats.percent_worse(stats.mean_upper_bound(d, bound_confidence)),
    )


def describe_change(pct: float) -> str:
    if math.isnan(pct):
        return "no change measured"
    shown = round(pct, 1) + 0.0  # + 0.0 turns -0.0 into 0.0: no "0.0 % better"
    return f"{shown:.1f} % worse" if shown >= 0 else f"{-shown:.1f} % better"


def format_pct(value: float, signed: bool = True) -> str:
    """A percent with one decimal and its sign ("+12.3 %"), or "n/a" for NaN."""
    if math.isnan(value):
        return "n/a"
    shown = round(value, 1) + 0.0  # + 0.0 turns -0.0 into 0.0, which has no sign to show
    return f"{shown:+.1f} %" if signed else f"{shown:.1f} %"


def format_p(p: float) -> str:
    return "n/a" if math.isnan(p) else f"{p:.2g}"


def judge_metric(
    server: str,
    trials: Sequence[Trial],
    metric: str,
    thresholds: GateThresholds = DEFAULT_THRESHOLDS,
    higher_is_better: bool | None = None,
    *,
    decides: bool = True,
    design: Design = Design.SEQUENTIAL,
) -> MetricResult:
    """The verdict for one server and metric from its trials. A metric that does not decide
    is NOT_JUDGED where a deciding one would be INCONCLUSIVE."""
    if higher_is_better is None:
        higher_is_better = METRICS[metric]
    pairing = pairs_of(trials, design)
    usable = [
        (b.value(metric), c.value(metric))
        for b, c in pairing.pairs
        if _usable(b.value(metric)) and _usable(c.value(metric))
    ]
    d = stats.log_ratios(usable, higher_is_better)
    summary = _summarise(d, thresholds.bound_confidence)
    noise = base_noise_pct(trials, metric) if design == Design.SEQUENTIAL else pair_noise_pct(d)
    verdict, message = _decide(summary, noise, thresholds)
    if len(usable) < thresholds.min_pairs:
        verdict = Verdict.INCONCLUSIVE
        message = _too_few(trials, pairing, len(usable), metric, thresholds)
    if verdict == Verdict.INCONCLUSIVE and not decides:
        verdict = Verdict.NOT_JUDGED
        message = f"not judged (this metric does not decide the gate): {message}"
    return MetricResult(
        server=server,
        metric=metric,
        verdict=verdict,
        median_change_pct=summary.change_pct,
        ci_low_pct=summary.ci_low_pct,
        ci_high_pct=summary.ci_high_pct,
        p_value=summary.p_value,
        pairs=summary.n,
        noise_pct=noise,
        message=message,
        bound_pct=summary.upper_pct,
    )


def _too_few(
    trials: Sequence[Trial], pairing: Pairing, usable: int, metric: str, t: GateThresholds
) -> str:
    reasons = []
    invalid = Counter(x.invalid_reason or "no reason given" for x in trials if not x.valid)
    if invalid:
        why = ", ".join(f"{r}: {n}" for r, n in sorted(invalid.items()))
        reasons.append(f"{invalid.total()} invalid trials ({why})")
    if pairing.incomplete:
        reasons.append(f"{pairing.incomplete} incomplete pairs")
    if usable < len(pairing.pairs):
        reasons.append(f"{len(pairing.pairs) - usable} pairs without a usable {metric}")
    detail = ": " + "; ".join(reasons) if reasons else ""
    return f"only {usable} usable pairs of {pairing.expected}, need {t.min_pairs}{detail}"


def _decide(s: _Summary, noise_pct: float, t: GateThresholds) -> tuple[Verdict, str]:
    # A significant regression is an answer however noisy the machine: the paired test keeps
    # its false-alarm rate under noise. Noise only stops the gate vouching for anything else.
    if s.change_pct > t.regress_pct and s.p_worse < t.alpha:
        return Verdict.REGRESSION, f"{s.text()}, Wilcoxon p = {format_p(s.p_worse)} < {t.alpha:g}"
    if noise_pct > t.max_noise_pct:
        return (
            Verdict.INCONCLUSIVE,
            f"base-vs-base noise {noise_pct:.1f} % is above {t.max_noise_pct:g} %",
        )
    if not s.upper_pct < t.regress_pct:  # NaN (too few pairs) cannot rule anything out
        return (
            Verdict.INCONCLUSIVE,
            f"{s.text()}: too noisy to rule out a {t.regress_pct:g} % regression "
            f"({_bound_text(s, t)} is not below it)",
        )
    return _grade(s, t)


def _grade(s: _Summary, t: GateThresholds) -> tuple[Verdict, str]:
    """A candidate the pairs show is not a regression: worse within the threshold, better, or
    unchanged."""
    worse, significant = s.change_pct, s.p_worse < t.alpha
    p_text = f"Wilcoxon p = {format_p(s.p_worse)}"
    if worse > t.regress_pct:  # a skewed median above the threshold, the mean bound below it
        return Verdict.WARN, f"{s.text()}, not significant ({p_text} ≥ {t.alpha:g})"
    if worse >= t.warn_pct and significant:
        return Verdict.WARN, f"{s.text()}, {p_text} < {t.alpha:g}"
    if -worse > t.warn_pct and s.p_better < t.alpha:
        return Verdict.BETTER, f"{s.text()}, Wilcoxon p = {format_p(s.p_better)} < {t.alpha:g}"
    return (
        Verdict.NO_CHANGE,
        f"{s.text()}, Wilcoxon p = {format_p(s.p_value)}, {_bound_text(s, t)}",
    )


def _bound_text(s: _Summary, t: GateThresholds) -> str:
    return f"{100 * t.bound_confidence:g} % upper bound {format_pct(s.upper_pct)}"


def guard_result(
    server: str, trials: Sequence[Trial], thresholds: GateThresholds = DEFAULT_THRESHOLDS
) -> MetricResult:
    """Absolute guards on the candidate's sub-knee trials, valid or not (a 5xx is the server's
    answer even when the load was off): regression on any failure share at or above the limit
    or any HTTP 5xx."""
    problems = []
    for trial in sorted(trials, key=lambda x: (x.block, x.position)):
        if trial.side != CAND:
            continue
        found = []
        if trial.fail_pct >= thresholds.guard_fail_pct:
            found.append(f"{trial.fail_pct:.2f} % failed requests")
        if trial.http_5xx > 0:
            found.append(f"{trial.http_5xx} HTTP 5xx")
        if found:
            problems.append(f"{trial.label}: {' and '.join(found)}")
    limit = f"the limits are < {thresholds.guard_fail_pct:g} % failures and no HTTP 5xx"
    if problems:
        verdict, message = Verdict.REGRESSION, "; ".join(problems) + f" ({limit})"
    else:
        verdict, message = Verdict.NO_CHANGE, f"every candidate trial passed ({limit})"
    nan = math.nan
    return MetricResult(server, GUARD, verdict, nan, nan, nan, nan, 0, nan, message)


def judge_server(
    server: str,
    trials: Sequence[Trial],
    thresholds: GateThresholds = DEFAULT_THRESHOLDS,
    *,
    metrics: Iterable[str] = METRICS,
    deciding: Iterable[str] = DECIDING,
    design: Design = Design.SEQUENTIAL,
) -> list[MetricResult]:
    """Every metric's verdict, then the absolute guards."""
    decide = set(deciding)
    results = [
        judge_metric(server, trials, m, thresholds, decides=m in decide, design=design)
        for m in metrics
    ]
    return [*results, guard_result(server, trials, thresholds)]


def gate_exit_code(results: Iterable[MetricResult]) -> int:
    """1 on any regression, else 3 on any inconclusive result, else 0 (2 means a usage error).
    NOT_JUDGED does not count: the metrics that decide the gate had their say."""
    verdicts = {r.verdict for r in results}
    if Verdict.REGRESSION in verdicts:
        return 1
    if Verdict.INCONCLUSIVE in verdicts:
        return 3
    return 0


def needs_rerun(
    results: Iterable[MetricResult],
    thresholds: GateThresholds = DEFAULT_THRESHOLDS,
    deciding: Iterable[str] = DECIDING,
) -> bool:
    """True when the gate has no answer yet and more pairs may give one: results that do not
    pass are only inconclusive, or a deciding metric is worse than the regression threshold but
    not (yet) significant. A noisy machine can spoil one pair of eight, which leaves a real
    regression at p = 0.02; passing it on that would be a miss, while the same metric measured
    twice more per side settles it. A regression is an answer and is never re-run."""
    results = list(results)
    code = gate_exit_code(results)
    if code != 0:
        return code == 3
    decide = set(deciding)
    return any(
        r.metric in decide
        and r.verdict == Verdict.WARN
        and r.median_change_pct > thresholds.regress_pct
        for r in results
    )
