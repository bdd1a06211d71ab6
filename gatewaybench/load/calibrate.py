"""`--users auto`: short probes find each cell's knee on this machine, then steps bracket them.

A probe is a short step (doubling users from PROBE_START) that either holds — valid, p95 under
the SLO and failures under the capacity limit, the same test capacity uses — or does not. A
cell's knee lies between its last held probe and the first that failed. The steps run from
half the lowest knee (the slowest configuration) to the first failed probe of the strongest,
spaced geometrically so every cell's knee falls between two steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from gatewaybench.analysis.step import StepRow
from gatewaybench.spec import LoadSettings, Thresholds

PROBE_START = 10
PROBE_MAX = 1280  # doubling from 10: at most 8 probes per cell
STEPS = 7
MIN_USERS = 5


@dataclass(frozen=True)
class Probe:
    users: int
    rps: float
    p95_ms: float
    fail_pct: float
    held: bool
    reason: str


def probe_load(load: LoadSettings) -> LoadSettings:
    """Short timings: a probe only needs to tell held from not held."""
    return replace(load, ramp_s=1.0, warmup_s=2.0, window_s=4, stop_timeout_s=3.0)


def judge(row: StepRow, limits: Thresholds) -> Probe:
    if row.status != "ok" or not row.valid:
        held, reason = False, row.invalid_reason or row.status
    elif row.fail_pct > limits.fail_pct:
        held, reason = False, f"{row.fail_pct:.1f}% failed"
    elif row.p95_ms > limits.slo_ms:
        held, reason = False, f"p95 {row.p95_ms:.0f} ms > {limits.slo_ms:.0f} ms"
    else:
        held, reason = True, "held"
    return Probe(row.users, row.rps, row.p95_ms, row.fail_pct, held, reason)


def probe_levels() -> list[int]:
    levels, users = [], PROBE_START
    while users <= PROBE_MAX:
        levels.append(users)
        users *= 2
    return levels


def knee(probes: list[Probe]) -> int:
    """The last held level before the first that failed (0: not even the first held)."""
    last = 0
    for p in probes:
        if not p.held:
            break
        last = p.users
    return last


def choose_steps(knees: list[int], count: int = STEPS) -> tuple[int, ...]:
    """`count` geometric steps from half the lowest knee to twice the highest."""
    low = max(MIN_USERS, min(knees) // 2 if min(knees) else PROBE_START // 2)
    high = max(low * 2, 2 * max(knees) if max(knees) else PROBE_START)
    ratio = (high / low) ** (1 / (count - 1))
    steps = sorted({_round2(low * ratio**i) for i in range(count)})
    return tuple(steps)


def _round2(x: float) -> int:
    """Two significant digits, so the steps read like a person chose them."""
    digits = max(0, math.floor(math.log10(x)) - 1)
    return int(round(x / 10**digits) * 10**digits)
