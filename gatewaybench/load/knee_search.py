"""`--users auto`, the pure rules: short probes search each cell's knee, then steps bracket the
knees (gatewaybench.calibration runs the probes on a live stack).

A probe is a short step that either holds — valid, p95 under the SLO and failures under the
capacity limit, the same test capacity uses — or does not. Probes double the users from a start
(PROBE_START, or where a similar cell's knee was) until one fails, or, when the first fails,
halve them until one holds: either way the knee K held and 2K did not.

Steps then bracket the knees. Shared by every cell (the seed tables compare cells at the same
users): from half the lowest knee to twice the highest, geometrically. Per cell (a run with
upstream waits, where knees differ 30-fold between cells and the crossover compares capacities):
from K to 2K in factors of sqrt(2), so each cell's capacity is resolved to that factor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from gatewaybench.analysis.capacity import not_held
from gatewaybench.analysis.step import StepRow
from gatewaybench.spec import LoadSettings, Thresholds

PROBE_START = 10  # users; the open model's probes start at as many arrivals/s
PROBE_MAX = 1280  # doubling from 10: at most 8 probes per cell
PROBE_MIN = 1
STEPS = 7
MIN_USERS = 5


@dataclass(frozen=True)
class Probe:
    level: int  # users (the closed model), or arrivals/s (the open model's --rate auto)
    rps: float
    p95_ms: float
    fail_pct: float
    held: bool
    reason: str


def probe_load(load: LoadSettings) -> LoadSettings:
    """Short timings: a probe only needs to tell held from not held."""
    return replace(load, ramp_s=1.0, warmup_s=2.0, window_s=4, stop_timeout_s=3.0)


def judge(row: StepRow, limits: Thresholds) -> Probe:
    """Held or not, by capacity's rule (analysis.capacity.not_held): for the open model, drops
    count like failures and the p95 judged is the one from the intended start."""
    reason = not_held(row.to_json(), limits.fail_pct, limits.slo_ms)
    p95 = row.intended_p95_ms if row.open else row.p95_ms
    level = round(row.rate) if row.open else row.users
    return Probe(level, row.rps, p95, row.fail_pct, not reason, reason or "held")


def next_level(probes: list[Probe], start: int = PROBE_START) -> int | None:
    """The next probe's level, or None when the knee is found: double while held; when the
    first probe failed, halve until one holds."""
    if not probes:
        return start
    last = probes[-1]
    if probes[0].held:
        return 2 * last.level if last.held and 2 * last.level <= PROBE_MAX else None
    if last.held or last.level <= PROBE_MIN:
        return None
    return max(PROBE_MIN, last.level // 2)


def knee(probes: list[Probe]) -> int:
    """The largest level held below the first that failed (0: none held)."""
    if probes and not probes[0].held:  # searched downwards: the first level that held
        return next((p.level for p in probes if p.held), 0)
    last = 0
    for p in probes:
        if not p.held:
            break
        last = p.level
    return last


def bracket_steps(knee_users: int, count: int) -> tuple[int, ...]:
    """`count` steps up to 2K from a cell's knee K (held in its probe, 2K not), a factor
    sqrt(2) apart: 3 steps read K, sqrt(2)K, 2K; 4 add K/sqrt(2) below. Ending at 2K gives the
    capacity an upper end (a step that fails) unless the longer step holds what the short probe
    did not; the probes' short windows judge a little harder than steps do."""
    top = 2 * max(knee_users, PROBE_MIN)
    return tuple(sorted({max(PROBE_MIN, _round2(top / math.sqrt(2) ** i)) for i in range(count)}))


def choose_steps(knees: list[int], count: int = STEPS) -> tuple[int, ...]:
    """`count` geometric steps from half the lowest knee to twice the highest."""
    low = max(MIN_USERS, min(knees) // 2 if min(knees) else PROBE_START // 2)
    high = max(low * 2, 2 * max(knees) if max(knees) else PROBE_START)
    ratio = (high / low) ** (1 / (count - 1))
    steps = sorted({_round2(low * ratio**i) for i in range(count)})
    return tuple(steps)


def step_below(users: int) -> int | None:
    """The next step down from `users`, a factor sqrt(2) lower (None below PROBE_MIN)."""
    if users <= PROBE_MIN:
        return None
    return max(PROBE_MIN, min(users - 1, _round2(users / math.sqrt(2))))


def _round2(x: float) -> int:
    """Two significant digits, so the steps read like a person chose them."""
    digits = max(0, math.floor(math.log10(x)) - 1)
    return int(round(x / 10**digits) * 10**digits)
