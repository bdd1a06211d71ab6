"""One step's figures from its records: the steady window, counts, percentiles, validity, audit.

Validity is decided here and nowhere else, so every table and report shows the same verdict:
a step is valid only when its window was fully measured (warm-up excluded, not truncated), the
load generator was not the bottleneck, and Little's law says the generator held its users.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from gatewaybench.analysis.records import PSEUDO_KEYS, TASK_KEY, UPLOAD_KEY, StepRecords
from gatewaybench.analysis.waits import Wait, bound_problem

# The open model: a generator that dispatches arrivals late shifts every latency from the
# intended start by its lag and reshapes the arrivals on the lag's time scale. Both are
# negligible while the lag is small against what a visitor waits; the step is invalid when the
# lag's p99 exceeds both LAG_P99_LIMIT_MS and LAG_SHARE of the p95 from the intended start (on
# 2 cores a saturated server alone delays the generator's wake-ups by 10-50 ms: measured, and
# harmless to a p95 of seconds).
LAG_P99_LIMIT_MS = 10.0
LAG_SHARE = 0.05
GEN_CPU_LIMIT_PCT = 80.0  # per generating process (each Locust process uses one core at most)
LITTLE_TOLERANCE_PCT = 15.0
PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)

STEP_COLUMNS = (
    "server", "variant", "upstream_ms", "interface", "repeat", "model", "users", "rate",
    "status", "window_s", "window_start", "requests",
    "failures", "fail_pct", "slow_pct", "rps", "ok_rps", "mean_ms", "p50_ms", "p90_ms", "p95_ms",
    "p99_ms", "p999_ms", "max_ms", "arrivals", "dropped", "drop_pct", "intended_mean_ms",
    "intended_p50_ms", "intended_p95_ms", "intended_p99_ms", "lag_p99_ms", "lag_max_ms",
    "votes_attempted", "votes_ok", "votes_db", "votes_inflight",
    "drained", "integrity", "gen_processes", "gen_cpu_pct", "littles_users", "littles_err_pct",
    "nginx_requests", "nginx_p50_ms", "xcheck", "upstream_requests", "upstream_p50_ms",
    "upstream_check", "wait_bound_rps", "uploads", "upload_fail_pct", "upload_p50_ms",
    "pg_clients_peak", "valid", "invalid_reason",
    "locust_exit",
)  # fmt: skip


@dataclass(frozen=True)
class StepContext:
    server: str
    interface: str
    users: int
    warmup_s: float
    window_s: int
    think_mean_s: float
    votes_db: int | None
    locust_exit: int | None
    variant: str = ""  # the server label without its wait; "" in a run without waits
    upstream_ms: int | None = None  # the cell's upstream wait; None in a run without waits
    wait: Wait | None = None  # what every request waits (upstream, database); None: nothing
    model: str = "closed"  # "open": arrivals at `rate` per second (users is then 0)
    rate: float = math.nan


@dataclass
class StepRow:
    server: str
    interface: str
    users: int  # the closed model's users; 0 in an open-model step, whose level is `rate`
    variant: str = ""
    upstream_ms: int | None = None
    model: str = "closed"
    rate: float = math.nan  # the open model's arrivals offered per second
    status: str = "ok"  # "ok": Locust ran to the end of its window; "failed": it did not
    repeat: int = 1
    window_s: int = 0
    window_start: int = 0
    requests: int = 0
    failures: int = 0
    fail_pct: float = math.nan
    slow_pct: float = math.nan  # share of window responses slower than the SLO
    rps: float = math.nan
    ok_rps: float = math.nan
    mean_ms: float = math.nan
    p50_ms: float = math.nan
    p90_ms: float = math.nan
    p95_ms: float = math.nan
    p99_ms: float = math.nan
    p999_ms: float = math.nan
    max_ms: float = math.nan
    # The open model's: arrivals meant for the window and those dropped at the in-flight cap;
    # latency from each request's intended start (what a visitor waits, queueing in the
    # generator included), beside the service latency above (from the actual send); and how
    # late the generator dispatched the arrivals.
    arrivals: int | None = None
    dropped: int | None = None
    drop_pct: float = math.nan
    intended_mean_ms: float = math.nan
    intended_p50_ms: float = math.nan
    intended_p95_ms: float = math.nan
    intended_p99_ms: float = math.nan
    lag_p99_ms: float = math.nan
    lag_max_ms: float = math.nan
    votes_attempted: int = 0
    votes_ok: int = 0
    votes_db: int | None = None
    votes_inflight: int = 0
    drained: bool = False
    integrity: str = ""  # exact | consistent | DATA_LOSS | not_measured
    gen_processes: int = 0
    gen_cpu_pct: float = math.nan
    littles_users: float = math.nan
    littles_err_pct: float = math.nan
    nginx_requests: int | None = None  # nginx's own count for the window (cross-check)
    nginx_p50_ms: float = math.nan
    xcheck: str = ""
    upstream_requests: int | None = None  # the delayed upstream's own count over the whole step
    upstream_p50_ms: float = math.nan
    upstream_check: str = ""
    wait_bound_rps: float = math.nan  # a blocking cell's most requests/s under its wait
    uploads: int = 0  # slow clients' uploads in the window (not in the figures above)
    upload_fail_pct: float = math.nan
    upload_p50_ms: float = math.nan
    pg_clients_peak: int = 0
    valid: bool = False
    invalid_reason: str = ""
    locust_exit: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def open(self) -> bool:
        return self.model == "open"

    @property
    def level_text(self) -> str:
        return level_text(self.users, self.rate if self.open else None)

    @property
    def level_tag(self) -> str:
        return level_tag(self.users, self.rate if self.open else None)


def level_text(users: int, rate: float | None = None) -> str:
    """Where a step sits on its model's load axis, for people: "300 users" (closed) or, given
    the open model's rate, "20 arrivals/s"."""
    return f"{users} users" if rate is None else f"{rate:g} arrivals/s"


def level_tag(users: int, rate: float | None = None) -> str:
    """The same in file and directory names: u300, a20."""
    return f"u{users}" if rate is None else f"a{rate:g}"


def invalidate(row: StepRow, reason: str) -> None:
    """A check made after the records' analysis (from another component's log) failed."""
    row.valid = False
    row.invalid_reason = "; ".join(r for r in (row.invalid_reason, reason) if r)


def window_bounds(spawning_complete: float, warmup_s: float, window_s: int) -> tuple[int, int]:
    """Whole seconds [start, end): warm-up runs from the last spawn to the next full second."""
    start = math.ceil(spawning_complete + warmup_s)
    return start, start + window_s


def analyse_step(records: StepRecords, ctx: StepContext, slo_ms: float = 1000.0) -> StepRow:
    row = StepRow(ctx.server, ctx.interface, ctx.users, window_s=ctx.window_s)
    row.variant = ctx.variant
    row.upstream_ms = ctx.upstream_ms
    row.model, row.rate = ctx.model, ctx.rate
    row.locust_exit = ctx.locust_exit
    row.votes_db = ctx.votes_db
    _audit(records, row)
    control = records.control
    if control is None or "spawning_complete" not in control.events:
        row.status = "failed"
        row.invalid_reason = "load generator did not reach its user count (no records)"
        return row
    start, end = window_bounds(control.events["spawning_complete"], ctx.warmup_s, ctx.window_s)
    row.window_start = start
    _figures(records, row, start, end, slo_ms)
    _generator(records, row, start, end)
    if row.open:
        _open_figures(records, row, start, end)
    else:  # Little's law with think times: the closed model's users
        _littles_law(records, row, start, end, ctx.think_mean_s)
    reasons = _invalid_reasons(records, row, end)
    if ctx.wait is not None:
        row.wait_bound_rps = ctx.wait.bound_rps()
        reasons += [r for r in (bound_problem(row.ok_rps, ctx.wait),) if r]
    row.valid = not reasons
    row.invalid_reason = "; ".join(reasons)
    return row


def _normal(name: str) -> bool:
    """The voters' requests: the figures a reader compares. Slow uploads are reported apart."""
    return name not in PSEUDO_KEYS and name != UPLOAD_KEY


def _figures(records: StepRecords, row: StepRow, start: int, end: int, slo_ms: float) -> None:
    counts = records.window_counts(start, end)
    requests = sum(c["count"] for name, c in counts.items() if _normal(name))
    failures = sum(c["failures"] for name, c in counts.items() if _normal(name))
    hist = records.window_histogram(start, end, _normal)
    row.requests, row.failures = requests, failures
    row.fail_pct = 100 * failures / requests if requests else math.nan
    row.rps = requests / row.window_s
    row.ok_rps = (requests - failures) / row.window_s
    row.slow_pct = 100 * hist.count_above_ms(slo_ms) / hist.total if hist.total else math.nan
    row.mean_ms = hist.mean_ms()
    row.max_ms = hist.max_ms()
    for q, attr in zip(
        PERCENTILES, ("p50_ms", "p90_ms", "p95_ms", "p99_ms", "p999_ms"), strict=True
    ):
        setattr(row, attr, hist.percentile_ms(q))
    uploads = counts.get(UPLOAD_KEY, Counter())
    row.uploads = uploads["count"]
    if row.uploads:
        row.upload_fail_pct = 100 * uploads["failures"] / row.uploads
        row.upload_p50_ms = records.window_histogram(
            start, end, lambda n: n == UPLOAD_KEY
        ).percentile_ms(50)


def _open_figures(records: StepRecords, row: StepRow, start: int, end: int) -> None:
    """Arrivals and drops of the window, latency from the intended start, dispatch lag."""
    row.arrivals, row.dropped = records.window_arrivals(start, end)
    row.drop_pct = 100 * row.dropped / row.arrivals if row.arrivals else math.nan
    intended = records.window_intended_histogram(start, end)
    row.intended_mean_ms = intended.mean_ms()
    row.intended_p50_ms = intended.percentile_ms(50)
    row.intended_p95_ms = intended.percentile_ms(95)
    row.intended_p99_ms = intended.percentile_ms(99)
    lag = records.window_lag_histogram(start, end)
    row.lag_p99_ms, row.lag_max_ms = lag.percentile_ms(99), lag.max_ms()


def _audit(records: StepRecords, row: StepRow) -> None:
    """Votes the client attempted and saw acknowledged vs what the database counted."""
    votes = records.votes()
    row.votes_attempted = votes["attempted"]
    row.votes_ok = votes["acknowledged"]
    finished = votes["acknowledged"] + votes["rejected"] + votes["lost"]
    row.votes_inflight = max(0, row.votes_attempted - finished)
    row.drained = bool(records.processes) and row.votes_inflight == 0
    if row.votes_db is None:
        row.integrity = "not_measured"
    elif row.drained and votes["lost"] == 0:
        row.integrity = "exact" if row.votes_db == row.votes_ok else "DATA_LOSS"
    elif row.votes_ok <= row.votes_db <= row.votes_attempted:
        # some votes were in flight or unanswered: the database may hold a few more than acked
        row.integrity = "consistent"
    else:
        row.integrity = "DATA_LOSS"


def _generator(records: StepRecords, row: StepRow, start: int, end: int) -> None:
    generating = [p for p in records.processes if p.generates_load]
    row.gen_processes = len(generating)
    used = sum(p.cpu_at(end) - p.cpu_at(start) for p in records.processes)
    row.gen_cpu_pct = 100 * used / (end - start)


def _littles_law(
    records: StepRecords, row: StepRow, start: int, end: int, think_mean_s: float
) -> None:
    """Closed model: every user is either in a request or thinking. Both are measured inside
    the window (request-seconds, think-seconds); a user doing neither (a generator too busy to
    run it) shows as a shortfall. Records without think times use tasks x the mean think time."""
    seconds = end - start
    busy_s = records.busy_seconds(start, end) / seconds
    if records.has_think_times:
        thinking = records.think_seconds(start, end) / seconds
    else:
        tasks = records.window_counts(start, end).get(TASK_KEY, Counter())["count"]
        thinking = tasks / seconds * think_mean_s
    row.littles_users = busy_s + thinking
    row.littles_err_pct = 100 * abs(row.littles_users - row.users) / row.users


def _invalid_reasons(records: StepRecords, row: StepRow, end: int) -> list[str]:
    reasons = []
    control = records.control
    stopped = control.events.get("test_stopping") if control else None
    if stopped is not None and stopped < end:
        reasons.append(f"window truncated: Locust stopped {end - stopped:.1f} s early")
    if row.requests == 0:
        reasons.append("no requests completed in the window")
    limit = GEN_CPU_LIMIT_PCT * max(1, row.gen_processes)
    if row.gen_cpu_pct > limit:
        reasons.append(
            f"load generator saturated: {row.gen_cpu_pct:.0f}% CPU > {limit:.0f}% "
            f"({row.gen_processes} process(es)); use --processes"
        )
    if row.littles_err_pct > LITTLE_TOLERANCE_PCT:
        reasons.append(
            f"Little's law off by {row.littles_err_pct:.0f}% (> {LITTLE_TOLERANCE_PCT:.0f}%): "
            "the generator did not hold its users"
        )
    if row.integrity == "DATA_LOSS":
        reasons.append("votes acknowledged differ from votes counted in the database")
    if row.open:
        reasons += _open_reasons(row)
    return reasons


def _open_reasons(row: StepRow) -> list[str]:
    if not row.arrivals:
        return ["no arrivals were meant for the window"]
    limit = max(LAG_P99_LIMIT_MS, LAG_SHARE * row.intended_p95_ms)
    if row.lag_p99_ms > limit:
        return [
            f"load generator late: dispatch lag p99 {row.lag_p99_ms:.1f} ms > {limit:.0f} ms "
            f"(the larger of {LAG_P99_LIMIT_MS:g} ms and {100 * LAG_SHARE:g} % of the p95 from "
            "the intended start): the arrivals were not the Poisson process offered; give the "
            "generator a core (--processes, or fewer cells' load at once)"
        ]
    return []
