"""The crossover: from which upstream wait on does a variant hold more users than the reference.

Pure functions over the steps DataFrame. A cell of a run with the upstream-wait dimension is a
(variant, upstream_ms) pair; its capacity is capacity.py's (the largest step held, every smaller
step held too), per repeat, then a mean with a 95 % CI. A run without the dimension, or with a
single wait, has no crossover (None), so reports without it do not change.

Honesty rules: a lead is claimed only beyond noise (with repeats: CI lower bound above the
reference's CI upper bound); a capacity equal to the largest step tested is a lower bound, and a
lead over a lower bound is never claimed (its real limit is unknown).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from gatewaybench.analysis.capacity import Estimate, capacity_of, estimate

INVALID_MARK = "*"
AT_LEAST = "≥"

# How a variant compares with the reference at one wait.
AHEAD = "ahead"  # more users beyond noise
NOISE = "within noise"  # a higher mean, but the 95 % CIs overlap
BOUND = "reference at the largest step"  # the reference's limit is unknown: no lead claimed
BEHIND = "not ahead"  # fewer or as many users
MISSING = "not measured"  # no steps for the variant or the reference at this wait


@dataclass(frozen=True)
class Point:
    """Capacity of one (variant, wait) cell over its repeats."""

    variant: str
    upstream_ms: int
    server: str  # the cell label, wait included, e.g. "gunicorn@100ms"
    interface: str
    capacity: Estimate
    largest_step: int
    lower_bound: bool  # some repeat held the largest step tested: the limit lies beyond
    invalid_reasons: tuple[str, ...]  # of invalid or unfinished steps, in users order
    # the step that ended the capacity (in some repeat) was invalid or unfinished, not failed
    # on merit: the real capacity may be higher
    stopped_by_invalid: bool = False

    @property
    def invalid(self) -> bool:
        return bool(self.invalid_reasons)

    @property
    def low(self) -> float:
        return self.capacity.mean - _half(self.capacity)

    @property
    def high(self) -> float:
        return self.capacity.mean + _half(self.capacity)


@dataclass(frozen=True)
class Comparison:
    variant: str
    reference: str
    status: dict[int, str]  # wait -> AHEAD, NOISE, BOUND, BEHIND or MISSING
    crossover_ms: int | None  # ahead at this wait and every larger one; None: not at the end


@dataclass(frozen=True)
class Crossover:
    variants: tuple[str, ...]  # in matrix order (first appearance in steps.csv)
    waits: tuple[int, ...]  # ascending
    reference: str
    points: dict[tuple[str, int], Point]
    comparisons: tuple[Comparison, ...]  # every variant but the reference, in matrix order
    fail_pct_max: float
    slo_ms: float

    def point(self, variant: str, wait: int) -> Point | None:
        return self.points.get((variant, wait))


@dataclass(frozen=True)
class CrossoverTable:
    caption: str
    header: list[str]
    rows: list[list[str]]  # first cell: the variant
    note: str


def _half(est: Estimate) -> float:
    # a single observation has no interval: compare its value as it is
    return 0.0 if math.isnan(est.half_width) else est.half_width


def has_wait_dimension(steps: pd.DataFrame) -> bool:
    """True when the run crossed its cells with at least two distinct upstream waits."""
    if steps.empty or "upstream_ms" not in steps or "variant" not in steps:
        return False
    return steps["upstream_ms"].dropna().nunique() >= 2


def point_of(steps: pd.DataFrame, fail_pct_max: float, slo_ms: float) -> Point:
    """One (variant, wait) cell's steps, every repeat."""
    first = steps.iloc[0]
    per_repeat = [g for _, g in steps.groupby("repeat")]
    caps = [capacity_of(g, fail_pct_max, slo_ms) for g in per_repeat]
    censored = [c > 0 and c == int(g["users"].max()) for c, g in zip(caps, per_repeat, strict=True)]
    stoppers = [_stopper(g, c) for c, g in zip(caps, per_repeat, strict=True)]
    bad = steps[~steps["valid"].astype(bool) | (steps["status"] != "ok")].sort_values("users")
    reasons = tuple(
        f"{int(r['users'])} users: {r['invalid_reason'] or 'the step did not finish'}"
        for r in bad.fillna({"invalid_reason": ""}).to_dict("records")
    )
    return Point(
        variant=str(first["variant"]),
        upstream_ms=int(first["upstream_ms"]),
        server=str(first["server"]),
        interface=str(first["interface"]),
        capacity=estimate([float(c) for c in caps]),
        largest_step=int(steps["users"].max()),
        lower_bound=any(censored),
        invalid_reasons=reasons,
        stopped_by_invalid=any(
            r is not None and (not r["valid"] or r["status"] != "ok") for r in stoppers
        ),
    )


def _stopper(steps: pd.DataFrame, capacity: float) -> dict[Any, Any] | None:
    """The step right above the capacity: the one capacity_of stopped at (None: none above)."""
    above = steps[steps["users"] > capacity].sort_values("users")
    return None if above.empty else above.iloc[0].to_dict()


def points(steps: pd.DataFrame, fail_pct_max: float, slo_ms: float) -> list[Point]:
    """Every (variant, wait) cell, variants in matrix order, waits ascending."""
    dim = steps.dropna(subset=["variant", "upstream_ms"])
    out = []
    for variant in dict.fromkeys(dim["variant"]):
        mine = dim[dim["variant"] == variant]
        for wait in sorted({int(w) for w in mine["upstream_ms"]}):
            out.append(point_of(mine[mine["upstream_ms"] == wait], fail_pct_max, slo_ms))
    return out


def reference_variant(pts: Sequence[Point]) -> str:
    """The first WSGI variant in matrix order: the classic baseline; else the first variant."""
    wsgi = [p.variant for p in pts if p.interface == "wsgi"]
    return wsgi[0] if wsgi else pts[0].variant


def compare(variant: Point | None, reference: Point | None) -> str:
    """How `variant` stands against `reference` at one wait."""
    if variant is None or reference is None:
        return MISSING
    v, r = variant.capacity.mean, reference.capacity.mean
    if reference.lower_bound and v >= r:
        return BOUND
    if v <= r:
        return BEHIND
    return AHEAD if variant.low > reference.high else NOISE


def crossover_wait(status: dict[int, str]) -> int | None:
    """The smallest wait from which on (it and every larger wait) the status is AHEAD."""
    found = None
    for wait in sorted(status, reverse=True):
        if status[wait] != AHEAD:
            break
        found = wait
    return found


def crossover(steps: pd.DataFrame, fail_pct_max: float, slo_ms: float) -> Crossover | None:
    """The crossover of a run, or None when the run has no upstream-wait dimension."""
    if not has_wait_dimension(steps):
        return None
    pts = points(steps, fail_pct_max, slo_ms)
    by_key = {(p.variant, p.upstream_ms): p for p in pts}
    variants = tuple(dict.fromkeys(p.variant for p in pts))
    waits = tuple(sorted({p.upstream_ms for p in pts}))
    ref = reference_variant(pts)
    comparisons = []
    for v in variants:
        if v == ref:
            continue
        status = {w: compare(by_key.get((v, w)), by_key.get((ref, w))) for w in waits}
        comparisons.append(Comparison(v, ref, status, crossover_wait(status)))
    return Crossover(variants, waits, ref, by_key, tuple(comparisons), fail_pct_max, slo_ms)


# --- sentences -------------------------------------------------------------------------------


def _value(est: Estimate) -> str:
    # repeats that agree exactly have a zero-width CI: "80", not "80 ± 0"
    return format(est.mean, ".0f") if _half(est) == 0 else est.text()


def amount(p: Point) -> str:
    """Users held, as a number a reader can trust: a lower bound says so."""
    return f"at least {_value(p.capacity)}" if p.lower_bound else _value(p.capacity)


def _and(items: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def waits_text(waits: Sequence[int]) -> str:
    """'0 ms', '0 and 20 ms', '0, 20 and 100 ms'."""
    return _and([str(w) for w in waits]) + " ms"


def _numbers(cx: Crossover, c: Comparison, waits: Sequence[int]) -> str:
    """Both capacities at each of `waits` measured for both (the evidence for a sentence)."""
    parts = []
    for wait in dict.fromkeys(waits):
        v, r = cx.point(c.variant, wait), cx.point(c.reference, wait)
        if v is not None and r is not None:
            parts.append(f"at {wait} ms: {amount(v)} vs {amount(r)} users")
    return "; ".join(parts) if parts else "no wait was measured for both"


def _headline(cx: Crossover, c: Comparison) -> str:
    ahead = [w for w in cx.waits if c.status[w] == AHEAD]
    measured = [w for w in cx.waits if c.status[w] != MISSING]
    last = measured[-1:]  # the largest wait measured for both: where waiting weighs most
    who = f"{c.variant} held more users than {c.reference}"
    if c.crossover_ms == cx.waits[0]:
        return f"{who} at every wait tested, from {c.crossover_ms} ms ({_numbers(cx, c, last)})"
    if c.crossover_ms is not None:
        head = f"{who} from {c.crossover_ms} ms of upstream wait on ({_numbers(cx, c, last)})"
        earlier = [w for w in ahead if w < c.crossover_ms]
        return head + (f"; also at {waits_text(earlier)}" if earlier else "")
    if ahead:
        return (
            f"{who} only at {waits_text(ahead)} of upstream wait, not at the largest wait "
            f"tested ({_numbers(cx, c, [ahead[-1], *last])})"
        )
    unclear = any(c.status[w] in (NOISE, BOUND) for w in cx.waits)
    verb = "was not clearly ahead of" if unclear else "held no more users than"
    return f"{c.variant} {verb} {c.reference} at any wait tested ({_numbers(cx, c, last)})"


def _clauses(cx: Crossover, c: Comparison) -> list[str]:
    """What keeps a reader from over-reading the headline: noise and lower bounds."""
    out = []
    noise = [w for w in cx.waits if c.status[w] == NOISE]
    if noise:
        out.append(f"more at {waits_text(noise)} but within noise (the 95 % CIs overlap)")
    bound = [w for w in cx.waits if c.status[w] == BOUND]
    if bound:
        out.append(
            f"at {waits_text(bound)} {c.reference} held the largest step tested, a lower "
            "bound, so no lead is claimed there"
        )
    out += _invalid_clauses(cx, c)
    missing = [w for w in cx.waits if c.status[w] == MISSING]
    if missing:
        out.append(f"not measured at {waits_text(missing)}")
    return out


def _invalid_clauses(cx: Crossover, c: Comparison) -> list[str]:
    """An invalid step that ended a capacity leaves it unknown: say where it could change the
    comparison (the variant not ahead, or the reference behind a claimed lead)."""
    out = []
    for name, statuses in ((c.variant, (BEHIND, NOISE, BOUND)), (c.reference, (AHEAD, NOISE))):
        waits = [
            w
            for w in cx.waits
            if c.status[w] in statuses and (p := cx.point(name, w)) is not None
            and p.stopped_by_invalid
        ]  # fmt: skip
        if waits:
            out.append(
                f"at {waits_text(waits)} {name}'s capacity stopped at an invalid step, so it may "
                "be higher"
            )
    return out


def comparison_sentence(cx: Crossover, c: Comparison) -> str:
    return "; ".join([_headline(cx, c), *_clauses(cx, c)]) + "."


def _best_at(cx: Crossover, wait: int) -> str:
    here = [p for v in cx.variants if (p := cx.point(v, wait)) is not None]
    top = max(p.capacity.mean for p in here)
    if top == 0:
        return f"at {wait} ms by none (no variant held the first step)"
    leaders = [p for p in here if p.capacity.mean == top]
    names = _and([p.variant for p in leaders])
    bound = ", the largest step tested" if any(p.lower_bound for p in leaders) else ""
    amounts = list(dict.fromkeys(amount(p) for p in leaders))  # same mean, maybe not same CI
    each = " each" if len(leaders) > 1 and len(amounts) == 1 else ""
    text = f"at {wait} ms by {names} ({_and(amounts)} users{each}{bound}"
    close = [p.variant for p in here if p not in leaders and p.high >= min(q.low for q in leaders)]
    noise = f"; within noise of {_and(close)}" if close else ""
    return text + noise + ")"


def best_sentence(cx: Crossover) -> str:
    """One sentence naming the variant that held the most users at each wait."""
    parts = [_best_at(cx, w) for w in cx.waits]
    first = parts[0].replace(" ms by ", " ms of upstream wait by ", 1)
    return "The most users were held " + ", ".join([first, *parts[1:]]) + "."


def sentences(cx: Crossover) -> list[str]:
    """The crossover verdict: each variant against the reference, then the best per wait."""
    return [*(comparison_sentence(cx, c) for c in cx.comparisons), best_sentence(cx)]


# --- table and JSON --------------------------------------------------------------------------


def cell_text(p: Point | None) -> str:
    if p is None:
        return "-"
    text = f"{AT_LEAST} {_value(p.capacity)}" if p.lower_bound else _value(p.capacity)
    return text + (INVALID_MARK if p.invalid else "")


def table(cx: Crossover) -> CrossoverTable:
    """Variants (rows) x waits (columns), users held within the SLO in each cell."""
    repeats = max(p.capacity.n for p in cx.points.values())
    caption = (
        f"Users held (valid, failures below {cx.fail_pct_max:g} %, p95 ≤ {cx.slo_ms:g} ms) by "
        "variant x upstream wait"
        + (f", mean of {repeats} repeats ± 95 % CI" if repeats > 1 else "")
    )
    header = ["variant", *(f"{w} ms" for w in cx.waits)]
    rows = [[v, *(cell_text(cx.point(v, w)) for w in cx.waits)] for v in cx.variants]
    ref = next(p for p in cx.points.values() if p.variant == cx.reference)
    why = "the first WSGI variant in the matrix" if ref.interface == "wsgi" else "the first variant"
    notes = [f"Sentences compare each variant with {cx.reference}, {why}."]
    if any(p.lower_bound for p in cx.points.values()):
        notes.append(
            f"{AT_LEAST} N: the largest step tested was held, so the limit lies beyond (a lower "
            "bound)."
        )
    if any(p.invalid for p in cx.points.values()):
        notes.append(
            f"{INVALID_MARK} the cell has an invalid or unfinished step, which never counts as "
            "held: the capacity stops below it if it came first (see the caveats)."
        )
    return CrossoverTable(caption, header, rows, " ".join(notes))


def to_json(cx: Crossover | None) -> dict[str, Any] | None:
    """For results.json: plain numbers; NaN half-widths (one repeat) as null."""
    if cx is None:
        return None
    return {
        "reference": cx.reference,
        "variants": list(cx.variants),
        "waits_ms": list(cx.waits),
        "points": [
            {
                "variant": p.variant,
                "upstream_ms": p.upstream_ms,
                "server": p.server,
                "capacity_mean": p.capacity.mean,
                "capacity_ci95_half_width": None if math.isnan(p.capacity.half_width)
                else p.capacity.half_width,
                "repeats": p.capacity.n,
                "largest_step": p.largest_step,
                "lower_bound": p.lower_bound,
                "invalid_steps": list(p.invalid_reasons),
            }
            for p in cx.points.values()
        ],
        "comparisons": [
            {"variant": c.variant, "reference": c.reference, "crossover_ms": c.crossover_ms,
             "by_wait": {str(w): s for w, s in c.status.items()}}
            for c in cx.comparisons
        ],
        "sentences": sentences(cx),
    }  # fmt: skip
