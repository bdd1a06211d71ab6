"""One measured step: Locust run + resource monitor + log slices -> row, failures, resources.

Everything measured is written to the step's raw directory before it is analysed, so the
analysis (pure, in gatewaybench.analysis) can always be redone from disk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psycopg2

from gatewaybench.analysis.failures import FailureRow, failure_rows, gather_evidence
from gatewaybench.analysis.nginxlog import UPLOAD_URI, AccessEntry, cross_check, parse_access
from gatewaybench.analysis.records import StepRecords, read_step_records
from gatewaybench.analysis.resources import ResourceRow, resource_rows
from gatewaybench.analysis.step import StepContext, StepRow, analyse_step, invalidate
from gatewaybench.analysis.waits import Wait, app_calls, check_upstream, parse_upstream_access
from gatewaybench.backend import Components
from gatewaybench.load import locust_runner
from gatewaybench.results.files import write_json
from gatewaybench.spec import LoadSettings, RunSpec
from gatewaybench.stack import pollsdb
from gatewaybench.stack.postgres import Dsn

CONNECTION_KINDS = ("connection refused", "connection reset", "connection closed")


@dataclass
class CellStack:
    """The running stack one cell's steps are measured against (whichever backend runs it)."""

    dsn: Dsn  # the harness's own database role
    app_database: str
    nginx_port: int  # where the harness reaches nginx on this machine (loopback)
    question_ids: tuple[int, ...]
    components: Components  # how the backend runs the load, samples, slices logs
    label: str = ""  # the cell's label: what tables call the server
    interface: str = ""
    locustfile: Path | None = None  # None: the polls scenario
    audit: bool = True  # count votes in the database (the polls app only)
    variant: str = ""  # the label without the wait, in a run with upstream waits
    upstream_ms: int | None = None
    wait: Wait | None = None  # what every request waits; None: nothing configured
    runtime: dict[str, Any] = field(default_factory=dict)  # what the app reports (/gbinfo)


@dataclass
class StepResult:
    row: StepRow
    failures: list[FailureRow]
    resources: list[ResourceRow]


def knobs(spec: RunSpec) -> dict[str, Any]:
    """The settings failure attribution quotes in its causes."""
    return {
        "pg_max_connections": spec.postgres.max_connections,
        "nginx_worker_connections": spec.nginx.worker_connections,
        "proxy_read_timeout_s": spec.nginx.proxy_read_timeout_s,
        "client_timeout_s": spec.load.client_timeout_s,
    }


def measure_step(
    spec: RunSpec,
    cell_stack: CellStack,
    *,
    users: int,
    repeat: int,
    gen_processes: int,
    step_dir: Path,
    locust_log: Path,
    open_step: locust_runner.OpenStep | None = None,
) -> StepResult:
    """One step: `users` of the closed model or, with `open_step`, the open model's arrivals
    (users then 0)."""
    load = spec.load
    plan = locust_runner.StepPlan(
        users,
        cell_stack.nginx_port,
        step_dir,
        step_dir / "locust",
        cell_stack.question_ids,
        gen_processes,
        cell_stack.locustfile,
        open_step,
    )
    step_dir.mkdir(parents=True, exist_ok=True)
    mark = cell_stack.components.mark()
    before = pollsdb.total_votes(cell_stack.dsn) if cell_stack.audit else 0
    measured = cell_stack.components.run_load(load, plan, locust_log)
    write_json(step_dir / "resources.json", measured.samples)
    votes = _votes_since(cell_stack, before)
    logs = cell_stack.components.logs_since(mark)
    samples, code = measured.samples, measured.code
    context = _context(cell_stack, users, load, votes, code)
    if open_step is not None:
        context = replace(context, model="open", rate=open_step.rate)
    return analyse_measured(
        spec, context, repeat=repeat, step_dir=step_dir, samples=samples, logs=logs
    )


@dataclass(frozen=True)
class StepLogs:
    """What each component logged during the step (however the backend collected it)."""

    nginx_error: str
    nginx_access: str
    app: str
    postgres: str
    upstream_access: str = ""  # the delayed upstream's access log ('' when it has none)


def analyse_measured(
    spec: RunSpec,
    context: StepContext,
    *,
    repeat: int,
    step_dir: Path,
    samples: dict[str, Any],
    logs: StepLogs,
) -> StepResult:
    """A measured step's figures from what is on disk and in the logs: the same analysis for
    every backend (local processes, containers)."""
    records = read_step_records(step_dir)
    row = analyse_step(records, context, slo_ms=spec.thresholds.slo_ms)
    row.repeat = repeat
    start, end = row.window_start, row.window_start + row.window_s
    _save_window_histogram(records, step_dir, start, end)
    failures = failure_rows(
        records.window_errors(start, end),
        gather_evidence(logs.nginx_error, logs.app, logs.postgres),
        knobs(spec),
        server=context.server,
        repeat=repeat,
        users=context.users,
        rate=context.rate,
    )
    # The front's log, parsed once for both checks (None: its access log is off).
    front = parse_access(logs.nginx_access) if logs.nginx_access else None
    _cross_check(row, front, failures)
    _check_upstream(row, front, logs.upstream_access, context.wait)
    resources = (
        resource_rows(
            samples,
            server=context.server,
            repeat=repeat,
            users=context.users,
            start=start,
            end=end,
            rate=context.rate,
        )
        if row.status == "ok"
        else []
    )
    row.pg_clients_peak = max((r.peak_db_clients for r in resources), default=0)
    return StepResult(row, failures, resources)


def _votes_since(cell_stack: CellStack, before: int) -> int | None:
    """Votes counted during the step; None when not audited, or when the database is gone
    (a crashed PostgreSQL must not cost the step's other figures)."""
    if not cell_stack.audit:
        return None
    try:
        return pollsdb.total_votes(cell_stack.dsn) - before
    except psycopg2.Error:
        return None


def _context(
    cell_stack: CellStack, users: int, load: LoadSettings, votes_db: int | None, code: int | None
) -> StepContext:
    # Little's law needs the scenario's think time: known for the polls scenario only.
    think = (load.think_min_s + load.think_max_s) / 2 if cell_stack.locustfile is None else math.nan
    return StepContext(
        cell_stack.label,
        cell_stack.interface,
        users,
        load.warmup_s,
        load.window_s,
        think,
        votes_db,
        code,
        variant=cell_stack.variant,
        upstream_ms=cell_stack.upstream_ms,
        wait=cell_stack.wait,
    )


def _save_window_histogram(records: StepRecords, step_dir: Path, start: int, end: int) -> None:
    """The steady window's merged latency histogram, kept so steps and runs can be merged."""
    hist = records.window_histogram(start, end)
    write_json(
        step_dir / "window-histogram.json",
        {"unit": "us", "significant_digits": 3, "window": [start, end], "counts": hist.to_json()},
    )


def _check_upstream(
    row: StepRow, front: list[AccessEntry] | None, upstream_access: str, wait: Wait | None
) -> None:
    """The delayed upstream's own account: over the whole step its count beside the app's calls,
    and in the window its median, which must be the configured delay (else the step measured
    another wait: invalid)."""
    if row.status != "ok" or wait is None or not wait.upstream_ms:
        return
    calls = (
        None
        if front is None
        else app_calls([e.status for e in front if e.calls_upstream], wait.calls)
    )
    check = check_upstream(
        parse_upstream_access(upstream_access),
        row.window_start,
        row.window_start + row.window_s,
        wait,
        calls,
    )
    row.upstream_requests, row.upstream_p50_ms = check.requests, check.p50_ms
    row.upstream_check = check.text if front is not None else f"{check.text} (count: no front log)"
    if not check.p50_ok:
        invalidate(row, check.text)


def _cross_check(row: StepRow, front: list[AccessEntry] | None, failures: list[FailureRow]) -> None:
    if row.status != "ok" or front is None:
        row.xcheck = "not available" if row.status == "ok" else ""
        return
    # Connections nginx dropped before any HTTP exchange never reach its access log.
    unseen = sum(f.count for f in failures if f.kind in CONNECTION_KINDS)
    check = cross_check(
        [e for e in front if e.uri != UPLOAD_URI],
        row.window_start,
        row.window_start + row.window_s,
        row.requests - unseen,
        row.p50_ms,
    )
    row.nginx_requests = check.nginx_requests
    row.nginx_p50_ms = check.nginx_p50_ms
    row.xcheck = "agrees" if check.agrees else f"DISAGREES: {check.note}"
    if math.isnan(row.nginx_p50_ms):
        row.xcheck = "no requests in nginx's log for the window"
