"""Physics checks for steps whose requests wait (on the delayed upstream, on the database).

Two facts a step must agree with, or it did not measure what it says:
- the upstream's own access log: it answered the app's calls after the configured delay (its
  median within a few ms), so the upstream was never the bottleneck; over the whole step its
  count matches the calls the app made for the requests nginx passed it;
- a cell that blocks a thread per request (W processes x T threads) cannot complete more than
  W*T / d requests per second when every request waits d seconds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from gatewaybench.analysis.nginxlog import median_ms

P50_TOLERANCE_MS = 5.0  # nginx logs ms; an upstream starved of CPU answers late: that is a flag
COUNT_SLACK = 2  # requests per step whose calls straddle the step's start (a previous drain)
BOUND_TOLERANCE_PCT = 5.0
# Front responses the app may not have produced: nginx's own 502/503/504, and 499 (the client
# gave up; the app may still be serving it, after the window).
NOT_FROM_APP = (499, 502, 503, 504)
UNSURE = (499, 504)  # nginx passed these on, then stopped waiting


@dataclass(frozen=True)
class Wait:
    """What every polls request of a cell waits."""

    upstream_ms: int
    calls: int
    db_wait_ms: int
    blocking_slots: int | None  # W x T for thread-bound cells; None: no such bound

    @property
    def upstream_s(self) -> float:
        """The upstream part, which every request makes (the db wait is the vote's only)."""
        return self.upstream_ms * self.calls / 1000

    def bound_rps(self) -> float:
        """The most requests/s a blocking cell can complete; NaN where there is no bound."""
        if self.blocking_slots is None or self.upstream_s <= 0:
            return math.nan
        return self.blocking_slots / self.upstream_s


@dataclass(frozen=True)
class UpstreamEntry:
    msec: float
    status: int
    request_time_ms: float
    asked_s: str


@dataclass(frozen=True)
class UpstreamCheck:
    requests: int
    p50_ms: float
    text: str  # "agrees", or what disagrees
    p50_ok: bool  # False: the upstream did not answer after the configured delay


def parse_upstream_access(text: str) -> list[UpstreamEntry]:
    """`$msec $status $request_time $arg_s` lines (nginx/upstream.conf.j2)."""
    entries = []
    for line in text.splitlines():
        parts = line.split(" ")
        try:
            entries.append(
                UpstreamEntry(float(parts[0]), int(parts[1]), float(parts[2]) * 1000, parts[3])
            )
        except (IndexError, ValueError):
            continue  # a line cut by rotation: not evidence either way
    return entries


@dataclass(frozen=True)
class AppCalls:
    """The calls the app made for the step's front requests, as nginx saw them."""

    made: int  # for responses the app produced
    unsure: int  # for requests nginx gave up on (499, 504): the app may still have made them


def app_calls(front_statuses: Iterable[int], calls: int) -> AppCalls:
    made = sum(1 for status in front_statuses if status not in NOT_FROM_APP)
    unsure = sum(1 for status in front_statuses if status in UNSURE)
    return AppCalls(calls * made, calls * unsure)


def check_upstream(
    entries: list[UpstreamEntry], start: int, end: int, wait: Wait, app: AppCalls | None
) -> UpstreamCheck:
    """`entries` are the whole step's (ramp to drain): every request has finished, so the count
    must match the app's calls exactly, but for requests the client gave up on (`app` None: the
    front's access log is off, so there is nothing to compare with). The median is the
    window's."""
    inside = [e for e in entries if start <= e.msec < end]
    p50 = median_ms(e.request_time_ms for e in inside)
    problems = []
    p50_ok = not inside or abs(p50 - wait.upstream_ms) <= P50_TOLERANCE_MS
    if not p50_ok:
        problems.append(f"upstream p50 {p50:.0f} ms vs {wait.upstream_ms} ms configured")
    errors = sum(1 for e in entries if e.status != 200)
    if errors:
        problems.append(f"the upstream answered {errors} call(s) with an error")
    slack = COUNT_SLACK * wait.calls
    if app is not None and not app.made - slack <= len(entries) <= app.made + app.unsure + slack:
        unsure = f" (+{app.unsure} for requests given up on)" if app.unsure else ""
        problems.append(f"upstream saw {len(entries)} calls vs {app.made}{unsure} the app made")
    return UpstreamCheck(len(entries), p50, "; ".join(problems) or "agrees", p50_ok)


def bound_problem(ok_rps: float, wait: Wait) -> str:
    """The reason a step breaks the blocking bound, or '' when it keeps it."""
    bound = wait.bound_rps()
    if math.isnan(bound) or ok_rps <= bound * (1 + BOUND_TOLERANCE_PCT / 100):
        return ""
    return (
        f"{ok_rps:.1f} successful req/s exceeds the blocking bound {bound:.1f} "
        f"({wait.blocking_slots} slots / {wait.upstream_s * 1000:.0f} ms of upstream wait): "
        "a measurement defect"
    )
