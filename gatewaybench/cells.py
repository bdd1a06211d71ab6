"""One cell of the matrix: its stack (upstream, app server, nginx, checks) and its steps.

A cell is a unit of failure: a server that fails to start or dies, or a PostgreSQL that dies
under it, fails that cell with the cause and the log tail, and the matrix goes on.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import replace
from typing import Any

from gatewaybench.analysis.step import StepRow, level_tag, level_text
from gatewaybench.analysis.waits import Wait
from gatewaybench.backend import Database
from gatewaybench.context import Context
from gatewaybench.errors import StackError
from gatewaybench.load import autoscale, knee_search, measure
from gatewaybench.load.locust_runner import OpenStep
from gatewaybench.matrix import Cell, Effective, blocking_slots, effective, in_flight_text
from gatewaybench.results.rundir import RunRecorder
from gatewaybench.servers import REGISTRY, Concurrency
from gatewaybench.signals import checkpoint
from gatewaybench.stack import pollsdb
from gatewaybench.stack.logs import LOG_CAP_BYTES
from gatewaybench.stack.verify import DebugProbe, probe_debug, verify_scenario


def run_cell(ctx: Context, cell: Cell, db: Database, repeat: int) -> bool:
    """All steps of one cell. A failure is recorded, not raised: the matrix continues."""
    eff = effective(cell, ctx.spec.budget)
    ctx.rec.set_server(cell.label, **_cell_facts(ctx, cell, eff), status="running")
    phase = cell.label if ctx.spec.repeat == 1 else f"{cell.label} (repeat {repeat})"
    ctx.progress.unit_started()
    try:
        return unit_of_failure(
            ctx.rec,
            ctx.say,
            cell.label,
            phase,
            lambda: _serve_and_load(ctx, cell, db, repeat),
        )
    finally:
        ctx.progress.unit_finished()


def unit_of_failure(
    rec: RunRecorder, say: Callable[[str], None], label: str, phase: str, body: Callable[[], None]
) -> bool:
    """Run one cell's body as a recorded phase; a StackError fails the cell (with its log
    tail in the manifest) instead of the run. Shared by both backends."""
    try:
        with rec.phase(phase):
            body()
    except StackError as exc:
        say(f"gatewaybench: {label} failed: {exc.one_line()}")
        if exc.detail:
            say(exc.detail)
        rec.set_server(label, status="failed", error=exc.one_line(), log_tail=exc.detail)
        return False
    rec.set_server(label, status="complete")
    return True


def _cell_facts(ctx: Context, cell: Cell, eff: Effective) -> dict[str, Any]:
    server = REGISTRY[cell.server]
    return {
        "server_name": cell.server,
        "interface": server.interface,
        "views": cell.views,
        "db": cell.db,
        "driver_configured": cell.resolved_driver,
        # "processes" and "workers" (below) are both the app server's workers: on-disk
        # manifest keys, kept as they are (renaming them would need a schema version).
        "processes": eff.workers,
        "threads": eff.threads_text,
        "pool_max": eff.pool_max,
        "max_db_connections": eff.db_text,
        "in_flight": in_flight_text(cell, eff),
        "upstream_ms": cell.upstream_ms,
        "workers": eff.workers,
        **ctx.backend.cell_facts(ctx, cell),
        "note": server.note,
    }


def _serve_and_load(ctx: Context, cell: Cell, db: Database, repeat: int) -> None:
    with ExitStack() as stack:
        cell_stack = start_cell_stack(ctx, stack, cell, db)
        _run_steps(ctx, cell, cell_stack, repeat)


def start_cell_stack(
    ctx: Context, stack: ExitStack, cell: Cell, db: Database, label: str = ""
) -> measure.CellStack:
    """Delayed upstream (when the cell waits), app server and nginx for one cell, by the run's
    backend, checked end to end; stopped by `stack`. `label` names it in logs and rows (default:
    the cell's label)."""
    label, source = label or cell.label, ctx.spec.app
    if source.is_sample:
        pollsdb.reset_votes(db.dsn)  # every cell starts from the same data
    eff = effective(cell, ctx.spec.budget)
    ctx.say(
        f"[{label}] starting ({cell.interface}, requests in flight: "
        f"{in_flight_text(cell, eff)}, database connections {eff.db_text})"
    )
    cell_stack = ctx.backend.start_cell(ctx, stack, cell, label, db)
    _record_debug(ctx, label, probe_debug(cell_stack.nginx_port))
    if source.is_sample:
        _record_runtime(ctx, cell, label, cell_stack.runtime)
        verify_scenario(cell_stack.nginx_port, ctx.question_ids[0])
        pollsdb.reset_votes(db.dsn)  # the check's vote must not count in the first step
    return replace(
        cell_stack,
        label=label,
        interface=cell.interface,
        locustfile=source.locustfile,
        audit=source.is_sample,
        variant=cell.variant if cell.upstream_ms is not None else "",
        upstream_ms=cell.upstream_ms,
        wait=_expected_wait(ctx, cell),
    )


def _expected_wait(ctx: Context, cell: Cell) -> Wait | None:
    """What every polls request of this cell waits, for the step's physics checks."""
    if cell.upstream_ms is None and not ctx.spec.django.db_wait_ms:
        return None
    eff = effective(cell, ctx.spec.budget)
    return Wait(
        upstream_ms=cell.upstream_ms or 0,
        calls=ctx.spec.django.upstream_calls,
        db_wait_ms=ctx.spec.django.db_wait_ms,
        blocking_slots=blocking_slots(cell, eff),
    )


def _record_debug(ctx: Context, label: str, probe: DebugProbe) -> None:
    """DEBUG as the running app shows it, in the manifest; on or unknown is a caveat (loud, but
    it invalidates nothing: the figures are what that app did)."""
    ctx.rec.set_server(label, django=probe.to_json())
    if probe.debug:
        _warn(
            ctx,
            f"{label}: the app runs with DEBUG = True (its 404 is Django's debug page): Django "
            "then keeps every SQL query in memory and renders debug pages, so these figures are "
            "not what the app serves in production; set DEBUG = False to benchmark it",
        )
    elif probe.debug is None:
        _warn(ctx, f"{label}: whether the app runs with DEBUG on was not observed ({probe.how})")


def _record_runtime(ctx: Context, cell: Cell, label: str, info: dict[str, Any]) -> None:
    """What the running app reports, in the manifest; a driver other than the cell's is an
    error (the cell would measure something else than its label says)."""
    ctx.rec.set_server(label, runtime=info)
    if info and info.get("driver") != cell.resolved_driver:
        raise StackError(
            f"{cell.label} should run {cell.resolved_driver} but the app reports "
            f"{info.get('driver')}",
            "check that psycopg 3 is installed only in .venv/psycopg3 (make install)",
        )
    adapted = info.get("adapted_middleware") or []
    if cell.interface == "asgi" and adapted:
        _warn(
            ctx,
            f"{label}: Django adapts {len(adapted)} middleware through sync_to_async under "
            f"ASGI (a thread per request even for async views): {', '.join(adapted)}",
        )
    green = info.get("psycopg2_green")
    greenlets = REGISTRY[cell.server].concurrency == Concurrency.GREENLET
    if greenlets and cell.resolved_driver == "psycopg2" and green is False:
        _warn(
            ctx,
            f"{label}: psycopg2 is not cooperative under gevent (psycogreen did not patch it): "
            "every query blocks the worker's greenlets",
        )


def _warn(ctx: Context, warning: str) -> None:
    """Said now and kept in the manifest (once), so the report's caveats carry it."""
    ctx.say(f"gatewaybench: warning: {warning}")
    warnings = ctx.rec.manifest["resolved"]["warnings"]
    if warning not in warnings:
        warnings.append(warning)


def _run_steps(ctx: Context, cell: Cell, cell_stack: measure.CellStack, repeat: int) -> None:
    """The closed model's user steps, then the open model's rate steps (--model)."""
    models = ctx.spec.load.models
    if "closed" in models:
        _run_user_steps(ctx, cell, cell_stack, repeat)
    if "open" in models:
        load = ctx.spec.load
        for rate in ctx.rates[cell.label]:
            checkpoint()
            arrivals = OpenStep(rate, load.max_inflight, load.arrival_seed)
            _one_step(ctx, cell, cell_stack, repeat, load.processes or 1, arrivals=arrivals)


def _run_user_steps(ctx: Context, cell: Cell, cell_stack: measure.CellStack, repeat: int) -> None:
    auto = ctx.spec.load.processes == 0
    gen_processes, previous = (1 if auto else ctx.spec.load.processes), None
    rows: list[StepRow] = []
    for users in _planned_steps(ctx, cell, rows):
        checkpoint()
        if auto:
            gen_processes = autoscale.next_processes(gen_processes, previous, users)
        previous = _one_step(ctx, cell, cell_stack, repeat, gen_processes, users=users)
        rows.append(previous)


def _one_step(
    ctx: Context,
    cell: Cell,
    cell_stack: measure.CellStack,
    repeat: int,
    gen_processes: int,
    *,
    users: int = 0,
    arrivals: OpenStep | None = None,
) -> StepRow:
    """Measure and record one step (`users`, or the open model's `arrivals`); a component that
    died during it fails the cell, after the step's row is recorded."""
    rate = None if arrivals is None else arrivals.rate
    tag, level = level_tag(users, rate), level_text(users, rate)
    ctx.progress.step_started(level)
    result = measure.measure_step(
        ctx.spec,
        cell_stack,
        users=users,
        repeat=repeat,
        gen_processes=gen_processes,
        step_dir=ctx.run_dir / "raw" / cell.label / f"r{repeat}" / tag,
        locust_log=ctx.run_dir / "logs" / f"locust-{cell.label}-r{repeat}-{tag}.log",
        open_step=arrivals,
    )
    ctx.progress.step_finished()
    dead = cell_stack.components.dead()
    if dead is not None:
        result.row.status, result.row.valid = "failed", False
        result.row.invalid_reason = f"{dead.problem} during the step"
    ctx.rec.add_step(result.row, result.failures, result.resources)
    ctx.say(_progress(result.row))
    for name in cell_stack.components.bound_logs():  # the slices are analysed: bound the disk
        ctx.say(f"gatewaybench: {name} reached {LOG_CAP_BYTES >> 20} MiB; cut")
    if result.row.integrity == "DATA_LOSS":
        ctx.say(_data_loss_banner(result.row))
    if dead is not None:
        raise StackError(f"{dead.problem} during the {level} step", dead.fix, dead.detail)
    return result.row


def _planned_steps(ctx: Context, cell: Cell, rows: list[StepRow]) -> Iterator[int]:
    """The cell's steps; then, for a cell whose steps sit around its own knee, lower ones while
    the lowest step run did not hold, so the knee is bracketed from below too (a short probe
    can hold what a longer step does not). Reads `rows` as the caller appends each step's."""
    yield from ctx.steps[cell.label]
    if cell.label not in ctx.bracketed:
        return
    while rows:
        lowest = min(rows, key=lambda r: r.users)
        lower = knee_search.step_below(lowest.users)
        if knee_search.judge(lowest, ctx.spec.thresholds).held or lower is None:
            return
        ctx.say(f"[{cell.label}] {lowest.users} users did not hold: adding a step at {lower}")
        ctx.steps[cell.label] = (lower, *ctx.steps[cell.label])
        ctx.progress.set_steps(cell.label, len(ctx.steps[cell.label]))
        ctx.rec.manifest["resolved"]["users_by_cell"][cell.label] = list(ctx.steps[cell.label])
        ctx.rec.save_manifest()
        yield lower


def _progress(row: StepRow) -> str:
    if row.status != "ok":
        return f"[{row.server}] {row.level_text}: FAILED ({row.invalid_reason})"
    verdict = "valid" if row.valid else f"INVALID: {row.invalid_reason}"
    votes = (
        f"votes acked/in db {row.votes_ok}/{row.votes_db} ({row.integrity}), "
        if row.votes_db is not None
        else ""
    )
    return (
        f"[{row.server}] {row.level_text}: {row.rps:.1f} req/s, {row.fail_pct:.2f}% failed, "
        f"{_open_progress(row)}p95 {row.p95_ms:.0f} ms, {row.slow_pct:.0f}% slow, "
        f"{votes}nginx {row.xcheck}{_wait_progress(row)}; {verdict}"
    )


def _open_progress(row: StepRow) -> str:
    """The open model's drops and its latency from the intended start, beside the service's."""
    if not row.open:
        return ""
    return (
        f"{row.dropped} of {row.arrivals} arrivals dropped, p95 from the intended start "
        f"{row.intended_p95_ms:.0f} ms, service "
    )


def _wait_progress(row: StepRow) -> str:
    """The upstream's own count and median, and a blocking cell's bound: in every step."""
    out = ""
    if row.upstream_check:
        out += (
            f", upstream {row.upstream_requests} calls p50 {row.upstream_p50_ms:.0f} ms "
            f"({row.upstream_check})"
        )
    if not math.isnan(row.wait_bound_rps):
        out += f", bound {row.wait_bound_rps:.1f} req/s"
    return out


def _data_loss_banner(row: StepRow) -> str:
    bar = "!" * 78
    return (
        f"{bar}\nDATA LOSS: {row.server} at {row.users} users: {row.votes_attempted} votes "
        f"attempted, {row.votes_ok} acknowledged, {row.votes_db} counted in the database\n{bar}"
    )
