"""The matrix: postgres -> migrate+seed -> per server (app -> nginx -> verify -> steps) -> tables.

Each server is a unit of failure: if it fails to start or dies, that is recorded and the matrix
goes on. Every step's row is on disk the moment the step ends. Teardown always runs.
"""

from __future__ import annotations

import os
import shutil
import sys
import traceback
from contextlib import ExitStack
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, TextIO

from gatewaybench import preflight
from gatewaybench.analysis.step import StepRow
from gatewaybench.analysis.tables import run_summary
from gatewaybench.errors import GatewaybenchError, Interrupted, StackError
from gatewaybench.load import autoscale, calibrate, locust_runner, step
from gatewaybench.matrix import Cell, Effective, effective, warnings_for
from gatewaybench.report.render import render_run
from gatewaybench.results import provenance, stale
from gatewaybench.results.rundir import RunRecorder, create_run_dir
from gatewaybench.servers import REGISTRY, ServerDef
from gatewaybench.signals import interruptible
from gatewaybench.spec import RunSpec, sized_max_connections
from gatewaybench.stack import app, nginx, pollsdb, postgres
from gatewaybench.stack.app import AppEnv
from gatewaybench.stack.verify import verify_scenario

RUN_MARKER_ENV = "GATEWAYBENCH_RUN_DIR"


class Context:
    """What one run shares across servers: spec, where things are, the database."""

    def __init__(
        self, spec: RunSpec, resolved: preflight.Resolved, rec: RunRecorder, log: TextIO
    ) -> None:
        self.spec = spec
        self.resolved = resolved
        self.rec = rec
        self.log = log
        self.base_env = dict(os.environ)
        self.app_env: AppEnv | None = None
        self.question_ids: tuple[int, ...] = ()
        self.users: tuple[int, ...] = spec.load.users  # or, with --users auto, calibrated

    @property
    def run_dir(self) -> Path:
        return self.rec.path

    def say(self, message: str) -> None:
        print(message, file=self.log, flush=True)


def run_bench(spec: RunSpec, out: TextIO = sys.stdout, log: TextIO = sys.stderr) -> int:
    """Run the matrix; print the seed tables and, as the last line, the run directory."""
    with interruptible() as guard:
        try:
            resolved = preflight.check(spec)  # usage errors surface before anything is created
            for message in stale.recover_stale_runs(spec.reports_dir.absolute()):
                print(f"gatewaybench: {message}", file=log)
            run_dir = create_run_dir(spec.reports_dir.absolute(), spec.label)
        except Interrupted as exc:
            return exc.exit_code  # nothing was started or written yet
        try:
            rec = RunRecorder.start(run_dir, _manifest_base(spec, resolved))
        except BaseException:
            shutil.rmtree(run_dir)  # ours, just made, holds nothing measured
            raise
        # Every child inherits this, so anything we started can be found by its environment.
        os.environ[RUN_MARKER_ENV] = str(run_dir)
        ctx = Context(spec, resolved, rec, log)
        ctx.say(f"gatewaybench: run directory {run_dir}")
        for warning in rec.manifest["resolved"]["warnings"]:
            ctx.say(f"gatewaybench: warning: {warning}")
        status, code, error = _run_and_classify(ctx)
        guard.disarm()  # from here on a signal waits until the results are written
        rec.finish(status, error)
        print(run_summary(run_dir), file=out)
        report = _render_report(ctx)
        if report is not None:
            print(f"report: {report}", file=out)
        print(run_dir, file=out, flush=True)
        return code if code or guard.exit_code is None else guard.exit_code


def _render_report(ctx: Context) -> Path | None:
    """The HTML report; a failure to render loses nothing (it can be rebuilt from disk)."""
    try:
        paths = render_run(ctx.run_dir)
    except Exception as exc:  # the measured results are already safe on disk
        ctx.say(f"gatewaybench: the report could not be rendered ({type(exc).__name__}: {exc}); "
                f"rebuild it with: gatewaybench report {ctx.run_dir}")  # fmt: skip
        return None
    return paths[0]


def _run_and_classify(ctx: Context) -> tuple[str, int, str | None]:
    """(manifest status, exit code, error) of running the matrix; never raises."""
    try:
        failed = _run_matrix(ctx)
    except Interrupted as exc:
        return "interrupted", exc.exit_code, f"interrupted by signal {exc.signum}"
    except GatewaybenchError as exc:
        ctx.say(f"gatewaybench: {exc.one_line()}")
        if exc.detail:
            ctx.say(exc.detail)
        return "failed", exc.exit_code, exc.one_line()
    except Exception as exc:  # a bug or an unexpected failure: still record what finished
        ctx.say(traceback.format_exc())
        return "failed", 1, f"unexpected error: {type(exc).__name__}: {exc}"
    if failed:
        return "failed", 1, "servers failed: " + ", ".join(failed)
    return "complete", 0, None


def _manifest_base(spec: RunSpec, resolved: preflight.Resolved) -> dict[str, Any]:
    return {
        "label": spec.label,
        "harness": stale.harness_identity(),
        "spec": spec.to_json(),
        "resolved": {
            "ports": {
                "nginx": resolved.nginx_port,
                "postgres": resolved.pg_port,
                "app": resolved.app_port,
            },
            "postgres_bindir": str(resolved.pg_bins.bindir),
            "postgres_user": postgres.run_as_user() or "(the invoking user)",
            "nginx_binary": str(resolved.nginx_bin),
            "locustfile": str(spec.app.locustfile or locust_runner.LOCUSTFILE),
            "spawn_rate_per_step": {u: spec.load.spawn_rate(u) for u in spec.load.users},
            "budget": {"processes": spec.workers, "threads": spec.threads},
            "pg_max_connections": sized_max_connections(spec),
            "warnings": matrix_warnings(spec),
            "django": {"DEBUG": False},
        },
        "versions": {
            **provenance.package_versions(),
            "nginx": nginx.nginx_version(resolved.nginx_bin),
            "postgresql": postgres.server_version(resolved.pg_bins),
        },
        "machine": provenance.machine(),
        "git": provenance.git_info(),
    }


def matrix_warnings(spec: RunSpec) -> list[str]:
    limit = sized_max_connections(spec)
    return [w for c in spec.cells for w in warnings_for(c, effective(c, spec.budget), limit)]


def _run_matrix(ctx: Context) -> list[str]:
    spec, logs = ctx.spec, ctx.run_dir / "logs"
    with ExitStack() as stack:
        with ctx.rec.phase("postgres"):
            cluster = stack.enter_context(
                postgres.running_cluster(
                    ctx.resolved.pg_bins,
                    ctx.run_dir,
                    logs,
                    ctx.resolved.pg_port,
                    replace(spec.postgres, max_connections=sized_max_connections(spec)),
                )
            )
        ctx.rec.manifest["resolved"]["postgres_data_dir"] = str(cluster.data_dir)
        ctx.rec.manifest["resolved"]["postgres_socket_dir"] = str(cluster.socket_dir)
        ctx.rec.save_manifest()  # before any load: a killed harness leaves these findable
        ctx.app_env = AppEnv.create(cluster.app_dsn, spec.django, spec.app)
        with ctx.rec.phase("migrate+seed"):
            app.prepare_database(ctx.app_env, ctx.base_env, logs)
            if spec.app.is_sample:
                ctx.question_ids = tuple(pollsdb.question_ids(cluster.dsn))
        if not spec.load.users:
            with ctx.rec.phase("calibrate"):
                _calibrate(ctx, cluster)
        failed: list[str] = []
        # Repeats interleave cells (A B C, A B C) so slow drift hits every cell alike.
        for repeat in range(1, spec.repeat + 1):
            for cell in spec.cells:
                if not _run_cell(ctx, cell, cluster, repeat):
                    failed.append(
                        cell.label if spec.repeat == 1 else f"{cell.label} (repeat {repeat})"
                    )
        return failed


def _calibrate(ctx: Context, cluster: postgres.Cluster) -> None:
    """Probe every cell (doubling users, short steps) and choose steps bracketing the knees."""
    probe_spec = replace(ctx.spec, load=calibrate.probe_load(ctx.spec.load))
    knees: dict[str, int] = {}
    for cell in ctx.spec.cells:
        probes = _probe_cell(ctx, probe_spec, cell, cluster)
        knees[cell.label] = calibrate.knee(probes)
        ctx.rec.manifest.setdefault("calibration", {})[cell.label] = {
            "knee_users": knees[cell.label],
            "probes": [asdict(p) for p in probes],
        }
        ctx.rec.save_manifest()
        ctx.say(f"[{cell.label}] calibrated: held up to {knees[cell.label]} users")
    ctx.users = calibrate.choose_steps(list(knees.values()))
    ctx.rec.manifest["resolved"]["users"] = list(ctx.users)
    ctx.rec.save_manifest()
    ctx.say(f"gatewaybench: calibrated steps: {', '.join(map(str, ctx.users))} users")


def _probe_cell(
    ctx: Context, probe_spec: RunSpec, cell: Cell, cluster: postgres.Cluster
) -> list[calibrate.Probe]:
    probes: list[calibrate.Probe] = []
    raw = ctx.run_dir / "raw" / "calibration" / cell.label
    with ExitStack() as stack:
        target = _start_stack(ctx, stack, cell, REGISTRY[cell.server], cluster)
        for users in calibrate.probe_levels():
            result = step.measure_step(
                probe_spec,
                target,
                users=users,
                repeat=1,
                processes=ctx.spec.load.processes or 1,
                step_dir=raw / f"u{users}",
                locust_log=ctx.run_dir / "logs" / f"locust-calibrate-{cell.label}-u{users}.log",
            )
            probes.append(calibrate.judge(result.row, ctx.spec.thresholds))
            if not probes[-1].held or not target.procs["app"].alive():
                break
    return probes


def _run_cell(ctx: Context, cell: Cell, cluster: postgres.Cluster, repeat: int) -> bool:
    """All steps of one cell. A failure is recorded, not raised: the matrix continues."""
    server, eff = REGISTRY[cell.server], effective(cell, ctx.spec.budget)
    ctx.rec.set_server(cell.label, **_cell_facts(ctx, cell, eff), status="running")
    phase = cell.label if ctx.spec.repeat == 1 else f"{cell.label} (repeat {repeat})"
    try:
        with ctx.rec.phase(phase):
            _serve_and_load(ctx, cell, server, cluster, repeat)
    except StackError as exc:
        ctx.say(f"gatewaybench: {cell.label} failed: {exc.one_line()}")
        if exc.detail:
            ctx.say(exc.detail)
        ctx.rec.set_server(cell.label, status="failed", error=exc.one_line(), log_tail=exc.detail)
        return False
    ctx.rec.set_server(cell.label, status="complete")
    return True


def _cell_facts(ctx: Context, cell: Cell, eff: Effective) -> dict[str, Any]:
    server = REGISTRY[cell.server]
    return {
        "server_name": cell.server,
        "interface": server.interface,
        "views": cell.views,
        "db": cell.db,
        "driver_configured": cell.resolved_driver,
        "processes": eff.processes,
        "threads": eff.threads_text,
        "pool_max": eff.pool_max,
        "max_db_connections": eff.db_text,
        "workers": eff.processes,
        "argv": app.server_argv(server, ctx.resolved.app_port, ctx.spec.budget, _target(ctx, cell)),
        "note": server.note,
    }


def _target(ctx: Context, cell: Cell) -> str:
    source = ctx.spec.app
    return source.wsgi if cell.interface == "wsgi" else source.asgi


def _serve_and_load(
    ctx: Context, cell: Cell, server: ServerDef, cluster: postgres.Cluster, repeat: int
) -> None:
    with ExitStack() as stack:
        target = _start_stack(ctx, stack, cell, server, cluster)
        _run_steps(ctx, cell, target, repeat)


def _start_stack(
    ctx: Context, stack: ExitStack, cell: Cell, server: ServerDef, cluster: postgres.Cluster
) -> step.Stack:
    """App server and nginx for one cell, checked end to end; stopped by `stack`."""
    assert ctx.app_env is not None
    logs, source = ctx.run_dir / "logs", ctx.spec.app
    eff = effective(cell, ctx.spec.budget)
    if source.is_sample:
        pollsdb.reset_votes(cluster.dsn)  # every cell starts from the same data
    ctx.say(
        f"[{cell.label}] starting ({server.interface}, {eff.processes} process(es) x "
        f"{eff.threads_text} thread(s), database connections {eff.db_text})"
    )
    env = ctx.app_env.variables(ctx.base_env) | app.cell_variables(cell, eff, ctx.spec.django)
    app_proc = app.start_server(
        server,
        app.server_argv(server, ctx.resolved.app_port, ctx.spec.budget, _target(ctx, cell)),
        port=ctx.resolved.app_port,
        env=env,
        logs=logs,
        cwd=ctx.app_env.app_dir,
        health_path=source.health_path,
        log_name=cell.label,
    )
    stack.callback(app_proc.stop)
    if source.is_sample:
        _record_runtime(ctx, cell, app.runtime_info(ctx.resolved.app_port))
    nginx_proc = stack.enter_context(
        nginx.running_nginx(
            ctx.resolved.nginx_bin,
            ctx.spec.nginx,
            port=ctx.resolved.nginx_port,
            upstream_port=ctx.resolved.app_port,
            conf_dir=ctx.run_dir / "conf",
            logs=logs,
            name=cell.label,
            health_path=source.health_path,
        )
    )
    if source.is_sample:
        verify_scenario(ctx.resolved.nginx_port, ctx.question_ids[0])
        pollsdb.reset_votes(cluster.dsn)  # the check's vote must not count in the first step
    return step.Stack(
        dsn=cluster.dsn,
        app_database=cluster.app_dsn.dbname,
        nginx_port=ctx.resolved.nginx_port,
        question_ids=ctx.question_ids,
        procs={"postgres": cluster.proc, "app": app_proc, "nginx": nginx_proc},
        logs={
            "nginx_error": logs / f"nginx-{cell.label}-error.log",
            "nginx_access": logs / f"nginx-{cell.label}-access.log",
            "app": app_proc.log_path,
            "postgres": cluster.proc.log_path,
        },
        env=ctx.base_env,
        label=cell.label,
        interface=server.interface,
        locustfile=source.locustfile,
        audit=source.is_sample,
    )


def _record_runtime(ctx: Context, cell: Cell, info: dict[str, Any]) -> None:
    """What the running app reports, in the manifest; a driver other than the cell's is an
    error (the cell would measure something else than its label says)."""
    ctx.rec.set_server(cell.label, runtime=info)
    if info.get("driver") != cell.resolved_driver:
        raise StackError(
            f"{cell.label} should run {cell.resolved_driver} but the app reports "
            f"{info.get('driver')}",
            "check that psycopg 3 is installed only in .venv/psycopg3 (make install)",
        )
    adapted = info.get("adapted_middleware") or []
    if cell.interface == "asgi" and adapted:
        ctx.say(
            f"[{cell.label}] warning: Django adapts {len(adapted)} middleware through "
            f"sync_to_async under ASGI (a thread hop per request): {', '.join(adapted)}"
        )


def _run_steps(ctx: Context, cell: Cell, target: step.Stack, repeat: int) -> None:
    auto = ctx.spec.load.processes == 0
    processes, previous = (1 if auto else ctx.spec.load.processes), None
    for users in ctx.users:
        if auto:
            processes = autoscale.next_processes(processes, previous, users)
        result = step.measure_step(
            ctx.spec,
            target,
            users=users,
            repeat=repeat,
            processes=processes,
            step_dir=ctx.run_dir / "raw" / cell.label / f"r{repeat}" / f"u{users}",
            locust_log=ctx.run_dir / "logs" / f"locust-{cell.label}-r{repeat}-u{users}.log",
        )
        app_proc = target.procs["app"]
        if not app_proc.alive():
            result.row.status, result.row.valid = "failed", False
            result.row.invalid_reason = (
                f"app server exited with code {app_proc.popen.returncode} during the step"
            )
        ctx.rec.add_step(result.row, result.failures, result.resources)
        ctx.say(_progress(result.row))
        if result.row.integrity == "DATA_LOSS":
            ctx.say(_data_loss_banner(result.row))
        previous = result.row
        if not app_proc.alive():
            raise StackError(
                f"{cell.label} died during the {users}-user step",
                f"see {app_proc.log_path}",
                app_proc.log_tail(),
            )


def _progress(row: StepRow) -> str:
    if row.status != "ok":
        return f"[{row.server}] {row.users} users: FAILED ({row.invalid_reason})"
    verdict = "valid" if row.valid else f"INVALID: {row.invalid_reason}"
    return (
        f"[{row.server}] {row.users} users: {row.rps:.1f} req/s, {row.fail_pct:.2f}% failed, "
        f"p95 {row.p95_ms:.0f} ms, {row.slow_pct:.0f}% slow, votes acked/in db "
        f"{row.votes_ok}/{row.votes_db} ({row.integrity}), nginx {row.xcheck}; {verdict}"
    )


def _data_loss_banner(row: StepRow) -> str:
    bar = "!" * 78
    return (
        f"{bar}\nDATA LOSS: {row.server} at {row.users} users: {row.votes_attempted} votes "
        f"attempted, {row.votes_ok} acknowledged, {row.votes_db} counted in the database\n{bar}"
    )
