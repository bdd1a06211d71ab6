"""What both of the gate's designs do with one side in one trial: its database copy, the shared
context pointed at it, one measured step, and the trial's metrics from its two steps."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

from gatewaybench.context import Context
from gatewaybench.gate.sides import Side
from gatewaybench.gate.verdict import Trial
from gatewaybench.load import measure
from gatewaybench.spec import RunSpec
from gatewaybench.stack import app, postgres
from gatewaybench.stack.local import local_backend

SUB_KNEE = ("latency_p50_ms", "latency_p95_ms")
ABOVE_KNEE = ("plateau_rps", "cpu_ms_per_req")
# Past its knee a closed loop cycles slowly (think time + seconds of queueing per task): the
# above-knee step gets at least this much warm-up to settle before its window.
ABOVE_KNEE_WARMUP_S = 5.0
# The fresh copy a sequential trial runs on, whichever side it is (one name: both sides alike).
# A duet runs both sides at once, so each gets its own: TRIAL_DB + "_base" / "_cand".
TRIAL_DB = "polls_trial"


@dataclass(frozen=True)
class Levels:
    """A cell's loads, users per stack: `low` below the knee, `high` above it."""

    knee: int
    low: int
    high: int


@dataclass
class SideDb:
    cluster: postgres.Cluster  # with this side's template database in dsn / app_dsn
    app_env: app.AppEnv
    question_ids: tuple[int, ...]

    def fresh_copy(self, name: str = TRIAL_DB) -> SideDb:
        """The side on a new copy of its template. A database that served one side for a whole
        gate was a per-side state no pairing cancels: base-vs-base gates found one side's
        sub-knee p95 higher in 10 of 12 pairs."""
        dsn, app_dsn = self.cluster.dsn, self.cluster.app_dsn
        postgres.fresh_copy(dsn, app_dsn.user, dsn.dbname, name)
        trial_app_dsn = replace(app_dsn, dbname=name)
        return SideDb(
            replace(self.cluster, dsn=replace(dsn, dbname=name), app_dsn=trial_app_dsn),
            replace(self.app_env, dsn=trial_app_dsn),
            self.question_ids,
        )


def side_spec(ctx: Context, side: Side) -> RunSpec:
    """The side's own settings (its app, Django knobs) with the gate's load and cells."""
    return replace(side.spec, load=ctx.spec.load, cells=ctx.spec.cells)


@contextmanager
def as_side(ctx: Context, side: Side, db: SideDb) -> Iterator[None]:
    """Point the shared context at one side (its spec's app settings, environment, data)."""
    local = local_backend(ctx)
    saved = (ctx.spec, local.app_env, ctx.question_ids)
    ctx.spec = side_spec(ctx, side)
    local.app_env, ctx.question_ids = db.app_env, db.question_ids
    try:
        yield
    finally:
        ctx.spec, local.app_env, ctx.question_ids = saved


def above_knee(spec: RunSpec) -> RunSpec:
    """The spec of a trial's above-knee step: its longer warm-up."""
    load = spec.load
    return replace(spec, load=replace(load, warmup_s=max(load.warmup_s, ABOVE_KNEE_WARMUP_S)))


def trial_step(
    ctx: Context,
    spec: RunSpec,
    cell_stack: measure.CellStack,
    users: int,
    *,
    where: tuple[str, str],
    repeat: int,
) -> measure.StepResult:
    """One of a trial's two steps; `where` is the trial's (label, slot tag)."""
    label, tag = where
    return measure.measure_step(
        spec,
        cell_stack,
        users=users,
        repeat=repeat,
        gen_processes=1,
        step_dir=ctx.run_dir / "raw" / label / tag / f"u{users}",
        locust_log=ctx.run_dir / "logs" / f"locust-{label}-{tag}-u{users}.log",
    )


def trial_from(
    where: tuple[str, int, int],
    low: measure.StepResult,
    high: measure.StepResult,
    app_cpus: str = "",
) -> Trial:
    """The trial's metrics; `where` is (side, block, position). Latency is measured below the
    knee; the plateau and CPU per request above it, where twice as many requests are served:
    base-vs-base, the app's CPU per request moved 1.3 % between the sides of a duet pair
    there and 3.0 % below the knee (24 pairs; the two windows' geometric mean: 1.9 %)."""
    side, block, position = where
    row = low.row
    values = {
        "latency_p50_ms": row.p50_ms,
        "latency_p95_ms": row.p95_ms,
        "cpu_ms_per_req": cpu_ms_per_request(high),
        "plateau_rps": high.row.ok_rps,
    }
    # Each step vouches only for its own metrics: a plateau step the generator could not hold
    # must not throw away that trial's sub-knee latency, nor the other way round.
    reasons = []
    for which, result, metrics in (("sub-knee", low, SUB_KNEE), ("above-knee", high, ABOVE_KNEE)):
        if result.row.status != "ok" or not result.row.valid:
            reasons.append(f"{which} load: {result.row.invalid_reason or result.row.status}")
            values.update(dict.fromkeys(metrics, math.nan))
    http_5xx = sum(f.count for f in low.failures if f.kind.startswith("HTTP 5"))
    valid = len(reasons) < 2
    return Trial(side, block, position, values, valid, "; ".join(reasons), row.fail_pct,
                 http_5xx, app_cpus)  # fmt: skip


def cpu_ms_per_request(result: measure.StepResult) -> float:
    """The app server's CPU milliseconds per request over the step's window (NaN without)."""
    app_cpu = next((r.cpu_pct for r in result.resources if r.component == "app"), math.nan)
    # CPU % of one core over the window / requests per second = CPU ms per request.
    return app_cpu * 10 / result.row.rps if result.row.rps > 0 else math.nan


def describe(label: str, tag: str, trial: Trial) -> str:
    """The line a trial's end says."""
    values = ", ".join(f"{k} {v:.2f}" for k, v in trial.values.items())
    invalid = f" (INVALID {trial.invalid_reason})" if trial.invalid_reason else ""
    cpus = f" [app on CPU {trial.app_cpus}]" if trial.app_cpus else ""
    return f"[{label}] {tag}: {values}{cpus}{invalid}"
