"""`gatewaybench run --backend compose`: the same matrix and run directory, in containers.

postgres -> migrate+seed -> per cell (app replicas -> nginx on a free 127.0.0.1 port -> the
scenario verified -> steps) -> tables and report, like runner.py. Per step: a fresh Locust
master with `processes` workers (Locust's own distribution), container CPU and memory sampled,
the vote audit counted inside the postgres container, the records and Locust's CSV copied out,
each component's log for the step sliced by time. Teardown (`down -v`) always runs.

The compose backend needs a Docker engine on this machine: nginx is published on 127.0.0.1,
where the harness verifies the scenario. Secrets are generated per run and never written.
"""

from __future__ import annotations

import json
import secrets
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from gatewaybench.analysis.step import StepContext
from gatewaybench.analysis.tables import run_summary
from gatewaybench.cells import unit_of_failure
from gatewaybench.compose import services as svc
from gatewaybench.compose.engine import Engine, versions_script
from gatewaybench.compose.model import Project, Service
from gatewaybench.compose.render import REPO_ROOT
from gatewaybench.compose.stats import ContainerMonitor
from gatewaybench.errors import Interrupted, StackError, UsageError
from gatewaybench.load import autoscale, locust_runner
from gatewaybench.load.step import StepLogs, StepResult, analyse_measured
from gatewaybench.matrix import Cell, effective
from gatewaybench.report.render import render_run
from gatewaybench.results import provenance, stale
from gatewaybench.results.files import write_json
from gatewaybench.results.rundir import RunRecorder, create_run_dir, utc_stamp
from gatewaybench.runner import classify_matrix
from gatewaybench.servers import REGISTRY
from gatewaybench.signals import interruptible
from gatewaybench.spec import RunSpec
from gatewaybench.stack import postgres
from gatewaybench.stack.net import free_port
from gatewaybench.stack.verify import verify_scenario

READY_TIMEOUT_S = 180  # first start includes the app's imports and PostgreSQL's initdb
MANAGE_TIMEOUT_S = 300
WORKER_EXIT_S = 30


def connect(factory: Callable[[], Any] | None = None) -> Any:
    """A Docker client that answers, or a UsageError saying what to do."""
    from docker.errors import DockerException

    try:
        if factory is None:
            import docker

            factory = docker.from_env  # type: ignore[attr-defined]  # untyped package
        client = factory()
        client.ping()
    except DockerException as exc:
        raise UsageError(
            f"no Docker engine answers ({exc})",
            "start one (or set DOCKER_HOST), or run without --backend compose",
        ) from None
    return client


@dataclass
class Ctx:
    spec: RunSpec
    rec: RunRecorder
    engine: Engine
    project: Project
    log: TextIO
    question_ids: tuple[int, ...] = ()
    pg: Any = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def run_dir(self) -> Path:
        return self.rec.path

    def say(self, message: str) -> None:
        print(message, file=self.log, flush=True)


def run_compose(
    spec: RunSpec,
    out: TextIO = sys.stdout,
    log: TextIO = sys.stderr,
    *,
    client_factory: Callable[[], Any] | None = None,
) -> int:
    """Run the matrix in containers; print the tables and, as the last line, the run dir."""
    with interruptible() as guard:
        try:
            refuse_unsupported(spec)
            project = svc.build_project(spec)  # usage errors before anything is created
            client = connect(client_factory)
            run_dir = create_run_dir(spec.reports_dir.absolute(), spec.label)
        except Interrupted as exc:
            return exc.exit_code
        values = run_values(spec)
        engine = Engine(client, f"gatewaybench-{run_dir.name.lower()}", values)
        rec = RunRecorder.start(run_dir, manifest_base(spec, project, engine))
        ctx = Ctx(spec, rec, engine, project, log)
        ctx.say(f"gatewaybench: run directory {run_dir} (compose backend, {engine.project})")
        status, code, error = classify_matrix(lambda: _run_matrix(ctx), ctx.say)
        guard.disarm()
        rec.finish(status, error)
        print(run_summary(run_dir), file=out)
        try:
            print(f"report: {render_run(run_dir)[0]}", file=out)
        except Exception as exc:  # the measured results are already safe on disk
            ctx.say(f"gatewaybench: the report could not be rendered ({exc}); "
                    f"rebuild it with: gatewaybench report {run_dir}")  # fmt: skip
        print(run_dir, file=out, flush=True)
        return code if code or guard.exit_code is None else guard.exit_code


def refuse_unsupported(spec: RunSpec) -> None:
    """What only the local backend measures yet: the compose file has the upstream service, but
    this runner neither starts it nor reads its log, so a wait would fail every request."""
    if any(c.upstream_ms for c in spec.cells) or spec.django.db_wait_ms:
        raise UsageError(
            "upstream and database waits run on the local backend only (for now)",
            "drop --backend compose, or use docker compose with GB_UPSTREAM_MS set",
        )
    if spec.load.slow_upload_pct or any(not c.request_buffering for c in spec.cells):
        raise UsageError(
            "slow uploads and nginx request buffering run on the local backend only (for now)",
            "drop --backend compose",
        )


def run_values(spec: RunSpec) -> dict[str, str]:
    """This run's secrets (never written anywhere) and the compose variables' values."""
    return {
        "GB_SECRET_KEY": secrets.token_urlsafe(50),
        "GB_DB_PASSWORD": secrets.token_urlsafe(24),
        "POSTGRES_PASSWORD": secrets.token_urlsafe(24),
        "LOCUST_WORKERS": str(max(1, spec.load.processes)),
    }


def manifest_base(spec: RunSpec, project: Project, engine: Engine) -> dict[str, Any]:
    return {
        "label": spec.label,
        "backend": "compose",
        "harness": stale.harness_identity(),
        "spec": spec.to_json(),
        "resolved": {
            "backend": "compose",
            "compose_project": engine.project,
            "images": {s.name: s.image for s in project.services},
            "locustfile": f"{svc.LOADTESTS}/locustfile.py",
            "spawn_rate_per_step": {u: spec.load.spawn_rate(u) for u in spec.load.users},
        },
        "versions": {"images": sorted({s.image for s in project.services})},
        "machine": provenance.machine(),
        "git": provenance.git_info(),
    }


def _run_matrix(ctx: Ctx) -> list[str]:
    engine, project, logs = ctx.engine, ctx.project, ctx.run_dir / "logs"
    with ExitStack() as stack:
        stack.callback(engine.down)  # registered first: runs last, whatever happened
        with ctx.rec.phase("images"):
            engine.prepare_images(project.services, REPO_ROOT)
        engine.create_network()
        engine.create_volumes(project.volumes)
        with ctx.rec.phase("postgres"):
            ctx.pg = engine.start(project.service("postgres"))
            stack.callback(_save_logs, engine, ctx.pg, logs / "postgres.log")
            engine.wait_healthy(ctx.pg, "postgres", READY_TIMEOUT_S)
        with ctx.rec.phase("migrate+seed"):
            _migrate(ctx, logs)
        failed: list[str] = []
        for repeat in range(1, ctx.spec.repeat + 1):
            for cell in ctx.spec.cells:
                if not _run_cell(ctx, cell, repeat):
                    failed.append(
                        cell.label if ctx.spec.repeat == 1 else f"{cell.label} ({repeat})"
                    )
        return failed


def _migrate(ctx: Ctx, logs: Path) -> None:
    container = ctx.engine.start(ctx.project.service("migrate"))
    code = ctx.engine.wait_exit(container, MANAGE_TIMEOUT_S)
    (logs / "migrate.log").write_text(ctx.engine.logs(container))
    ctx.engine.remove(container)
    if code != 0:
        raise StackError(f"migrate + seed exited with {code}", f"see {logs / 'migrate.log'}")
    rows = _sql(ctx, "SELECT id FROM polls_question ORDER BY id")
    ctx.question_ids = tuple(int(x) for x in rows.split())
    if not ctx.question_ids:
        raise StackError("the seed created no questions", f"see {logs / 'migrate.log'}")


def _sql(ctx: Ctx, sql: str) -> str:
    return ctx.engine.run_sql(ctx.pg, postgres.SUPERUSER, postgres.DB_NAME, sql)


def total_votes(ctx: Ctx) -> int:
    return int(_sql(ctx, "SELECT COALESCE(SUM(votes), 0) FROM polls_choice") or 0)


def reset_votes(ctx: Ctx) -> None:
    _sql(ctx, "UPDATE polls_choice SET votes = 0")
    _sql(ctx, "VACUUM ANALYZE polls_choice")


def _run_cell(ctx: Ctx, cell: Cell, repeat: int) -> bool:
    """All steps of one cell. A failure is recorded, not raised: the matrix continues."""
    service = ctx.project.service(svc.service_name(cell))
    eff = effective(cell, ctx.spec.budget)
    ctx.rec.set_server(
        cell.label,
        interface=cell.interface,
        workers=eff.processes,
        replicas=service.replicas,
        argv=list(service.command),
        note=REGISTRY[cell.server].note,
        status="running",
    )
    phase = cell.label if ctx.spec.repeat == 1 else f"{cell.label} (repeat {repeat})"
    return unit_of_failure(
        ctx.rec, ctx.say, cell.label, phase, lambda: _serve_and_load(ctx, cell, service, repeat)
    )


@dataclass
class Running:
    """The containers one cell's steps are measured against."""

    label: str
    interface: str
    apps: list[Any]
    nginx: Any
    nginx_port: int


def _serve_and_load(ctx: Ctx, cell: Cell, service: Service, repeat: int) -> None:
    engine, logs = ctx.engine, ctx.run_dir / "logs"
    reset_votes(ctx)  # every cell starts from the same data
    ctx.say(f"[{cell.label}] starting ({cell.interface}, {service.replicas} container(s))")
    with ExitStack() as stack:
        apps = []
        for index in range(1, service.replicas + 1):
            app = engine.start(service, suffix=f"r{repeat}-{index}")
            stack.callback(_save_logs, engine, app, logs / f"{cell.label}-{index}.log")
            apps.append(app)
        for app in apps:
            engine.wait_healthy(app, f"{cell.label} ({app.name})", READY_TIMEOUT_S)
        _record_versions(ctx, apps[0])
        nginx_service = ctx.project.service("nginx")
        port = free_port()
        nginx = engine.start(nginx_service, suffix=f"{service.name}-r{repeat}",
                             host_ports={svc.NGINX_PORT: port})  # fmt: skip
        stack.callback(_save_nginx_logs, engine, nginx, logs, cell.label)
        (ctx.run_dir / "conf" / f"nginx-{cell.label}.conf").write_text(svc.nginx_config(ctx.spec))
        engine.wait_healthy(nginx, f"nginx in front of {cell.label}", READY_TIMEOUT_S)
        verify_scenario(port, ctx.question_ids[0])
        reset_votes(ctx)  # the check's vote must not count in the first step
        _run_steps(ctx, Running(cell.label, cell.interface, apps, nginx, port), repeat)


def _run_steps(ctx: Ctx, running: Running, repeat: int) -> None:
    auto = ctx.spec.load.processes == 0
    processes, previous = (1 if auto else ctx.spec.load.processes), None
    for users in ctx.spec.load.users:
        if auto:
            processes = autoscale.next_processes(processes, previous, users)
        result = compose_step(ctx, running, users=users, repeat=repeat, workers=processes)
        dead = [a.name for a in running.apps if not ctx.engine.alive(a)]
        if dead:
            result.row.status, result.row.valid = "failed", False
            result.row.invalid_reason = f"app container exited during the step: {dead[0]}"
        ctx.rec.add_step(result.row, result.failures, result.resources)
        row = result.row
        ctx.say(f"[{row.server}] {row.users} users: {row.rps:.1f} req/s, {row.fail_pct:.2f}% "
                f"failed, p95 {row.p95_ms:.0f} ms, votes {row.votes_ok}/{row.votes_db} "
                f"({row.integrity}), valid={row.valid}")  # fmt: skip
        previous = row
        if dead:
            raise StackError(f"{running.label} died during the {users}-user step",
                             f"see docker logs {dead[0]}")  # fmt: skip


def compose_step(
    ctx: Ctx, running: Running, *, users: int, repeat: int, workers: int
) -> StepResult:
    """One step: master + workers, sampled and audited; then the same analysis as locally."""
    engine, spec = ctx.engine, ctx.spec
    name = f"{running.label}-r{repeat}-u{users}"
    step_dir = ctx.run_dir / "raw" / running.label / f"r{repeat}" / f"u{users}"
    step_dir.mkdir(parents=True, exist_ok=True)
    before = total_votes(ctx)
    t0 = _engine_now()
    master = engine.start(svc.step_master(spec, users, ctx.question_ids, workers), suffix=name)
    locusts = [master] + [
        engine.start(svc.step_worker(spec, users, ctx.question_ids), suffix=f"{name}-{i}")
        for i in range(1, workers + 1)
    ]
    groups = {"postgres": [ctx.pg], "app": running.apps, "nginx": [running.nginx],
              "locust": locusts}  # fmt: skip
    monitor = ContainerMonitor(groups, postgres.DB_NAME).start()
    try:
        code = engine.wait_exit(master, _step_timeout_s(spec))
        for worker in locusts[1:]:
            engine.wait_exit(worker, WORKER_EXIT_S)
    finally:
        samples = monitor.stop()
    t1 = _engine_now()
    write_json(step_dir / "resources.json", samples)
    votes = total_votes(ctx) - before
    _collect_locust(ctx, locusts, step_dir, name)
    return analyse(
        ctx,
        running=running,
        step_dir=step_dir,
        users=users,
        repeat=repeat,
        votes=votes,
        code=code,
        span=(t0, t1),
    )


def _collect_locust(ctx: Ctx, locusts: list[Any], step_dir: Path, name: str) -> None:
    """Records and Locust's CSV out of the containers; workers' record files are renamed,
    since every container's Locust is pid 1 and their names would collide."""
    engine = ctx.engine
    engine.copy_out(locusts[0], svc.RECORD_DIR, step_dir)
    for index, worker in enumerate(locusts[1:], start=1):
        engine.copy_out(worker, svc.RECORD_DIR, step_dir, prefix=f"c{index}-")
        for path in step_dir.glob(f"c{index}-record-*.json"):
            path.rename(step_dir / path.name.replace(f"c{index}-record-", f"record-c{index}-"))
    text = "\n".join(f"==> {c.name} <==\n{engine.logs(c)}" for c in locusts)
    (ctx.run_dir / "logs" / f"locust-{name}.log").write_text(text)
    for container in locusts:
        engine.remove(container)


def analyse(
    ctx: Ctx,
    *,
    running: Running,
    step_dir: Path,
    users: int,
    repeat: int,
    votes: int,
    code: int | None,
    span: tuple[float, float],
) -> StepResult:
    """The local backend's analysis (load.step.measure_step's second half), over what the
    containers logged between `span`'s ends."""
    spec, engine = ctx.spec, ctx.engine
    since, until = span
    load = spec.load
    context = StepContext(running.label, running.interface, users, load.warmup_s, load.window_s,
                          (load.think_min_s + load.think_max_s) / 2, votes, code)  # fmt: skip
    logs = StepLogs(
        nginx_error=engine.logs(running.nginx, since=since, until=until, stdout=False),
        nginx_access=engine.logs(running.nginx, since=since, until=until, stderr=False),
        app="".join(engine.logs(a, since=since, until=until) for a in running.apps),
        postgres=engine.logs(ctx.pg, since=since, until=until),
    )
    samples = json.loads((step_dir / "resources.json").read_text())
    return analyse_measured(
        spec, context, repeat=repeat, step_dir=step_dir, samples=samples, logs=logs
    )


def _step_timeout_s(spec: RunSpec) -> float:
    return locust_runner.run_time_cap_s(spec.load) + spec.load.stop_timeout_s + 60


def _engine_now() -> float:
    """Log slices are asked of the engine by wall-clock time (the local engine shares our
    clock; a remote engine's skew would shift the slices, one reason it is not supported)."""
    return time.time()


def _record_versions(ctx: Ctx, app: Any) -> None:
    """What the image really runs, once, from the first app container."""
    if ctx.info.get("versions_done"):
        return
    packages = ["django", "locust", "psycopg2-binary",
                *dict.fromkeys(p for s in REGISTRY.values() for p in s.packages)]  # fmt: skip
    text = ctx.engine.exec_text(app, versions_script(packages))
    versions = ctx.rec.manifest.setdefault("versions", {})
    try:
        versions.update(json.loads(text))
    except json.JSONDecodeError:
        versions["app image"] = "unknown (version probe failed)"
    versions["postgresql"] = ctx.engine.exec_text(ctx.pg, ["postgres", "--version"])
    versions["recorded_utc"] = utc_stamp()
    ctx.rec.save_manifest()
    ctx.info["versions_done"] = True


def _save_logs(engine: Engine, container: Any, path: Path) -> None:
    path.write_text(engine.logs(container))
    engine.remove(container)


def _save_nginx_logs(engine: Engine, container: Any, logs: Path, label: str) -> None:
    """Under the local backend's names: the access log is nginx's stdout, the error log its
    stderr (the official image links its log files there)."""
    (logs / f"nginx-{label}-access.log").write_text(engine.logs(container, stderr=False))
    (logs / f"nginx-{label}-error.log").write_text(engine.logs(container, stdout=False))
    engine.remove(container)
