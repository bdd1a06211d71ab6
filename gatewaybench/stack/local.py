"""The local-process backend: PostgreSQL, the delayed upstream, app servers, nginx and Locust as
processes of this machine, on loopback ports preflight claimed."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gatewaybench import preflight
from gatewaybench.backend import Database, Measured
from gatewaybench.errors import StackError
from gatewaybench.load import locust_runner
from gatewaybench.load.measure import CellStack, StepLogs
from gatewaybench.matrix import Cell, effective
from gatewaybench.results import provenance
from gatewaybench.servers import REGISTRY
from gatewaybench.spec import LoadSettings, RunSpec, sized_max_connections
from gatewaybench.stack import app, nginx, pollsdb, postgres, upstream
from gatewaybench.stack.logs import LOG_CAP_BYTES, LogMark, cap_log
from gatewaybench.stack.monitor import ResourceMonitor
from gatewaybench.stack.process import ManagedProcess

if TYPE_CHECKING:
    from gatewaybench.context import Context


@dataclass
class LocalComponents:
    """One cell's processes and their log files."""

    label: str  # the cell's, to name a dead app server
    procs: dict[str, ManagedProcess]  # component name -> process (group leader)
    # "nginx_error", "nginx_access", "app", "postgres"; "upstream_access" when it waits
    logs: dict[str, Path]
    database: str  # the app's database, whose clients the monitor counts
    child_env: Mapping[str, str]  # what Locust starts from (Context.child_env)
    ticking: Callable[[], AbstractContextManager[None]]  # progress redraws while load runs

    def run_load(
        self, load: LoadSettings, plan: locust_runner.StepPlan, log_path: Path
    ) -> Measured:
        proc = locust_runner.start_step(load, plan, dict(self.child_env), log_path)
        groups = {name: p.pid for name, p in self.procs.items()} | {"locust": proc.pid}
        monitor = ResourceMonitor(groups, self.database).start()
        try:
            with self.ticking():  # a thread, like the monitor's: no child starts until it ends
                code = locust_runner.wait_step(proc, load)
        finally:
            samples = monitor.stop()
        return Measured(code, samples)

    def mark(self) -> LogMark:
        return LogMark.now(list(self.logs.values()))

    def logs_since(self, mark: object) -> StepLogs:
        assert isinstance(mark, LogMark)

        def since(name: str) -> str:
            return mark.since(self.logs[name]) if name in self.logs else ""

        return StepLogs(
            nginx_error=since("nginx_error"),
            nginx_access=since("nginx_access"),
            app=since("app"),
            postgres=since("postgres"),
            upstream_access=since("upstream_access"),
        )

    def dead(self) -> StackError | None:
        for name, proc in self.procs.items():
            if not proc.alive():
                who = {"app": self.label, "postgres": "PostgreSQL"}.get(name, name)
                return StackError(
                    f"{who} exited with code {proc.popen.returncode}",
                    f"see {proc.log_path}",
                    proc.log_tail(),
                )
        return None

    def bound_logs(self) -> list[str]:
        return [p.name for p in self.logs.values() if cap_log(p, LOG_CAP_BYTES)]


@dataclass
class LocalBackend:
    """Processes on this machine; `resolved` is what preflight found (binaries, ports)."""

    resolved: preflight.Resolved
    app_env: app.AppEnv | None = None  # set once the database exists (the gate swaps it)
    name: str = field(default="local", init=False)

    @classmethod
    def create(cls, spec: RunSpec) -> LocalBackend:
        return cls(preflight.check(spec))

    def manifest_resolved(self, spec: RunSpec) -> dict[str, Any]:
        resolved = self.resolved
        return {
            "backend": self.name,
            "ports": {
                "nginx": resolved.nginx_port,
                "postgres": resolved.pg_port,
                "app": resolved.app_port,
            },
            "postgres_bindir": str(resolved.pg_bins.bindir),
            "postgres_user": postgres.run_as_user() or "(the invoking user)",
            "nginx_binary": str(resolved.nginx_bin),
            "locustfile": str(spec.app.locustfile or locust_runner.LOCUSTFILE),
        }

    def versions(self) -> dict[str, str]:
        return {
            **provenance.package_versions(),
            "nginx": nginx.nginx_version(self.resolved.nginx_bin),
            "postgresql": postgres.server_version(self.resolved.pg_bins),
        }

    def session(self, ctx: Context) -> contextlib.nullcontext[None]:
        return contextlib.nullcontext()  # every process belongs to a database or a cell

    def start_database(self, ctx: Context, stack: ExitStack) -> postgres.Cluster:
        spec, logs = ctx.spec, ctx.run_dir / "logs"
        cluster = stack.enter_context(
            postgres.running_cluster(
                self.resolved.pg_bins,
                ctx.run_dir,
                logs,
                self.resolved.pg_port,
                replace(spec.postgres, max_connections=sized_max_connections(spec)),
                env=ctx.child_env(),
            )
        )
        resolved = ctx.rec.manifest["resolved"]
        resolved["postgres_data_dir"] = str(cluster.data_dir)
        resolved["postgres_socket_dir"] = str(cluster.socket_dir)
        ctx.rec.save_manifest()  # before any load: a killed harness leaves these findable
        self.app_env = app.AppEnv.create(cluster.app_dsn, spec.django, spec.app)
        with ctx.rec.phase("migrate+seed"):
            app.prepare_database(self.app_env, ctx.child_env(), logs)
            if spec.app.is_sample:
                ctx.question_ids = tuple(pollsdb.question_ids(cluster.dsn))
        return cluster

    def cell_facts(self, ctx: Context, cell: Cell) -> dict[str, Any]:
        server = REGISTRY[cell.server]
        argv = app.server_argv(server, self.resolved.app_port, ctx.spec.budget, _target(ctx, cell))
        return {"argv": argv}

    def start_cell(
        self, ctx: Context, stack: ExitStack, cell: Cell, label: str, db: Database
    ) -> CellStack:
        assert isinstance(db, postgres.Cluster)
        waiting = self._start_upstream(ctx, stack, cell, label)
        app_proc = self._start_app(ctx, stack, cell, label, waiting)
        nginx_proc = stack.enter_context(
            nginx.running_nginx(
                self.resolved.nginx_bin,
                ctx.spec.nginx,
                port=self.resolved.nginx_port,
                upstream_port=self.resolved.app_port,
                conf_dir=ctx.run_dir / "conf",
                logs=ctx.run_dir / "logs",
                env=ctx.child_env(),
                name=label,
                health_path=ctx.spec.app.health_path,
                request_buffering=cell.request_buffering,
            )
        )
        logs = ctx.run_dir / "logs"
        components = LocalComponents(
            label=cell.label,
            procs={"app": app_proc, "postgres": db.proc, "nginx": nginx_proc},
            logs={
                "nginx_error": logs / f"nginx-{label}-error.log",
                "nginx_access": logs / f"nginx-{label}-access.log",
                "app": app_proc.log_path,
                "postgres": db.proc.log_path,
            },
            database=db.app_dsn.dbname,
            child_env=ctx.child_env(),
            ticking=ctx.progress.ticking,
        )
        if waiting is not None:
            components.procs["upstream"] = waiting.proc
            components.logs["upstream_access"] = waiting.files.access_log
        runtime = app.runtime_info(self.resolved.app_port) if ctx.spec.app.is_sample else {}
        return CellStack(
            dsn=db.dsn,
            app_database=db.app_dsn.dbname,
            nginx_port=self.resolved.nginx_port,
            question_ids=ctx.question_ids,
            components=components,
            runtime=runtime,
        )

    def _start_app(
        self,
        ctx: Context,
        stack: ExitStack,
        cell: Cell,
        label: str,
        waiting: upstream.Upstream | None,
    ) -> ManagedProcess:
        """The app server under this cell's variables, awaited on its health path."""
        assert self.app_env is not None, "start_database first"
        server, app_env, source = REGISTRY[cell.server], self.app_env, ctx.spec.app
        eff = effective(cell, ctx.spec.budget)
        env = app_env.variables(ctx.child_env()) | app.cell_variables(
            cell, eff, ctx.spec.django, app_env.python
        )
        if waiting is not None:
            env |= app.upstream_variables(waiting.url, ctx.spec.load.client_timeout_s)
        argv = app.server_argv(
            server, self.resolved.app_port, ctx.spec.budget, _target(ctx, cell), app_env.bin_dir
        )
        app_proc = app.start_server(
            server,
            argv,
            port=self.resolved.app_port,
            env=env,
            logs=ctx.run_dir / "logs",
            cwd=app_env.app_dir,
            health_path=source.health_path,
            log_name=label,
        )
        stack.callback(app_proc.stop)
        return app_proc

    def _start_upstream(
        self, ctx: Context, stack: ExitStack, cell: Cell, label: str
    ) -> upstream.Upstream | None:
        """The delayed upstream, for a cell that waits on it (none at 0 ms: no call is made)."""
        if not cell.upstream_ms:
            return None
        assert self.resolved.echo_module is not None  # preflight found it for waits
        return stack.enter_context(
            upstream.running_upstream(
                self.resolved.nginx_bin,
                self.resolved.echo_module,
                port=self.resolved.upstream_port,
                conf_dir=ctx.run_dir / "conf",
                logs=ctx.run_dir / "logs",
                env=ctx.child_env(),
                name=label,
            )
        )


def _target(ctx: Context, cell: Cell) -> str:
    source = ctx.spec.app
    return source.wsgi if cell.interface == "wsgi" else source.asgi


def local_backend(ctx: Context) -> LocalBackend:
    """The gate runs on local processes only (it compares two checkouts' code on one machine)."""
    assert isinstance(ctx.backend, LocalBackend), "the gate runs on the local backend"
    return ctx.backend
