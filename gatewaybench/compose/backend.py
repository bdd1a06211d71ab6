"""The container backend (`gatewaybench run --backend compose`): every component in a container.

It implements gatewaybench.backend.Backend, so the run, cells, steps, calibration, repeats,
signals, audits and reports are the local backend's code. What differs is here: the containers
come from the same service model as docker-compose.yml (compose/services.py), realised with the
docker SDK (compose/engine.py) on the engine compose/host.py finds or starts, from images
compose/images.py pulls or builds. PostgreSQL and nginx are published on 127.0.0.1 (free ports)
so the harness counts votes and verifies the scenario exactly as it does locally; Locust runs
in containers on the project network (a master and `gen_processes` generators: Locust's own
master/worker distribution), and its records are copied out after each step. Secrets are
generated per run and never written.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg2

from gatewaybench.backend import Database, Measured
from gatewaybench.compose import services as svc
from gatewaybench.compose.engine import Engine, versions_script
from gatewaybench.compose.host import EngineHost, container_engine, engine_expected
from gatewaybench.compose.images import ImageSet, prepare_images
from gatewaybench.compose.model import Project, Service
from gatewaybench.compose.monitor import ContainerMonitor, top_args
from gatewaybench.compose.render import REPO_ROOT
from gatewaybench.errors import StackError
from gatewaybench.load import locust_runner
from gatewaybench.load.measure import CellStack, StepLogs
from gatewaybench.matrix import Cell
from gatewaybench.servers import REGISTRY
from gatewaybench.signals import checkpoint
from gatewaybench.spec import LoadSettings, RunSpec
from gatewaybench.stack import app, pollsdb, postgres
from gatewaybench.stack.net import LOOPBACK, free_port

if TYPE_CHECKING:
    from gatewaybench.context import Context

READY_TIMEOUT_S = 180  # first start includes the app's imports and PostgreSQL's initdb
MANAGE_TIMEOUT_S = 300
GENERATOR_EXIT_S = 30
CONNECT_TIMEOUT_S = 30


def run_values() -> dict[str, str]:
    """This run's secrets, never written anywhere (the model's variables keep their defaults:
    the spec's own values)."""
    return {
        "GB_SECRET_KEY": secrets.token_urlsafe(50),
        "GB_DB_PASSWORD": secrets.token_urlsafe(24),
        "POSTGRES_PASSWORD": secrets.token_urlsafe(24),
    }


@dataclass
class ContainerDatabase:
    """The postgres container, published on a loopback port for the harness's own role."""

    engine: Engine
    container: Any
    dsn: postgres.Dsn

    def exit_problem(self) -> StackError | None:
        if self.engine.alive(self.container):
            return None
        return StackError(
            f"PostgreSQL exited (container {self.container.name})",
            "see logs/postgres.log",
            self.engine.tail(self.container),
        )


@dataclass
class ComposeComponents:
    """One cell's containers; Locust's are started per step."""

    backend: ComposeBackend
    label: str
    groups: dict[str, list[Any]]  # component -> its containers (postgres, app, nginx, upstream)
    database: str
    ticking: Callable[[], AbstractContextManager[None]]  # progress redraws while load runs

    @property
    def engine(self) -> Engine:
        return self.backend.engine

    def run_load(
        self, load: LoadSettings, plan: locust_runner.StepPlan, log_path: Path
    ) -> Measured:
        spec = dataclasses.replace(self.backend.spec, load=load)
        name = f"{self.label}-{plan.record_dir.parent.name}-{plan.record_dir.name}"
        master = self.backend.start_service(
            svc.step_master(spec, plan.users, plan.question_ids, plan.gen_processes), name
        )
        generator = svc.step_generator(spec, plan.users, plan.question_ids)
        locusts = [master] + [
            self.backend.start_service(generator, f"{name}-{i}")
            for i in range(1, plan.gen_processes + 1)
        ]
        monitor = ContainerMonitor(
            self.groups | {"locust": locusts}, self.database, top_args(self.engine.host.kind)
        ).start()
        try:
            with self.ticking():
                code = self._wait(master, locusts[1:], load)
        finally:
            samples = monitor.stop()
            self._collect(locusts, plan.record_dir, log_path)
        return Measured(code, samples)

    def _wait(self, master: Any, generators: list[Any], load: LoadSettings) -> int | None:
        deadline = time.monotonic() + _step_timeout_s(load)
        while self.engine.alive(master) and time.monotonic() < deadline:
            checkpoint()  # a signal ends the step; teardown removes the containers
            time.sleep(0.5)
        code = self.engine.wait_exit(master, 1)
        for generator in generators:
            self.engine.wait_exit(generator, GENERATOR_EXIT_S)
        return code

    def _collect(self, locusts: list[Any], record_dir: Path, log_path: Path) -> None:
        """Records and Locust's CSV out of the containers; the generators' record files are renamed,
        since every container's Locust is pid 1 and their names would collide."""
        record_dir.mkdir(parents=True, exist_ok=True)
        self.engine.copy_out(locusts[0], svc.RECORD_DIR, record_dir)
        for index, generator in enumerate(locusts[1:], start=1):
            for path in self.engine.copy_out(generator, svc.RECORD_DIR, record_dir, f"c{index}-"):
                if path.name.startswith(f"c{index}-record-"):
                    path.rename(path.with_name(path.name.replace(f"c{index}-record-",
                                                                 f"record-c{index}-")))  # fmt: skip
        log_path.write_text("\n".join(f"==> {c.name} <==\n{self.engine.logs(c)}" for c in locusts))
        for container in locusts:
            self.engine.remove(container)

    def mark(self) -> float:
        """Log slices are asked of the engine by wall-clock time: a local engine shares our
        clock (the harness reaches nginx on 127.0.0.1, so the engine is this machine's)."""
        return time.time()

    def logs_since(self, mark: object) -> StepLogs:
        assert isinstance(mark, float)
        until = time.time()

        def text(component: str, *, stdout: bool = True, stderr: bool = True) -> str:
            return "".join(
                self.engine.logs(c, since=mark, until=until, stdout=stdout, stderr=stderr)
                for c in self.groups.get(component, [])
            )

        return StepLogs(
            nginx_error=text("nginx", stdout=False),
            nginx_access=text("nginx", stderr=False),
            app=text("app"),
            postgres=text("postgres"),
            upstream_access=text("upstream", stderr=False),
        )

    def dead(self) -> StackError | None:
        for component, containers in self.groups.items():
            for container in containers:
                if not self.engine.alive(container):
                    who = {"app": self.label, "postgres": "PostgreSQL"}.get(component, component)
                    return StackError(
                        f"{who} exited (container {container.name})",
                        f"see its log in {self.backend.logs_dir}",
                        self.engine.tail(container),
                    )
        return None

    def bound_logs(self) -> list[str]:
        return []  # the engine caps each container's log (Engine.start: max-size)


@dataclass
class ComposeBackend:
    """Containers on a Docker-API engine (the user's, or a Podman service of our own)."""

    spec: RunSpec
    project: Project
    values: dict[str, str]
    name: str = field(default="compose", init=False)
    _engine: Engine | None = None
    _host: EngineHost | None = None
    _images: ImageSet | None = None
    logs_dir: Path = Path("logs")
    _versions_done: bool = False

    @classmethod
    def create(cls, spec: RunSpec, environ: Mapping[str, str]) -> ComposeBackend:
        """Usage errors before anything exists: an app the compose file cannot serve, no engine
        and no way to get one (`environ`: the CLI's, for DOCKER_HOST)."""
        project = svc.build_project(spec)
        engine_expected(environ)
        return cls(spec, project, run_values())

    @property
    def engine(self) -> Engine:
        assert self._engine is not None, "session() first"
        return self._engine

    def manifest_resolved(self, spec: RunSpec) -> dict[str, Any]:
        return {"backend": self.name, "locustfile": f"{svc.LOADTESTS}/locustfile.py"}

    def versions(self) -> dict[str, str]:
        return {}  # what the images run is read from them once they run (_record_versions)

    @contextmanager
    def session(self, ctx: Context) -> Iterator[None]:
        """The engine, the images, the project's network and volumes; `down -v` on exit."""
        self.logs_dir = ctx.run_dir / "logs"
        with ExitStack() as stack:
            self._host = stack.enter_context(
                container_engine(ctx.say, ctx.run_dir / "logs", ctx.child_env())
            )
            project = f"gatewaybench-{ctx.run_dir.name.lower()}"
            self._engine = Engine(self._host, project, self.values)
            stack.callback(self._engine.down)  # before the engine stops: nothing outlives a run
            with ctx.rec.phase("images"):
                self._images = prepare_images(self._host, REPO_ROOT, ctx.say)
            self._record_engine(ctx, project)
            self._engine.create_network()
            self._engine.create_volumes(self.project.volumes)
            yield

    def _record_engine(self, ctx: Context, project: str) -> None:
        assert self._host is not None and self._images is not None
        resolved = ctx.rec.manifest["resolved"]
        resolved["compose_project"] = project
        resolved["engine"] = self._host.describe()
        resolved["images"] = self._images.to_json()
        ctx.rec.save_manifest()

    def start_service(self, service: Service, suffix: str) -> Any:
        """A container of `service` on this run's image for it."""
        return self.engine.start(self._with_image(service), suffix=suffix)

    def _service(self, name: str) -> Service:
        return self._with_image(self.project.service(name))

    def _with_image(self, service: Service) -> Service:
        assert self._images is not None, "session() first"
        return self._images.apply(service)

    def start_database(self, ctx: Context, stack: ExitStack) -> ContainerDatabase:
        engine, port = self.engine, free_port()
        pg = engine.start(self._service("postgres"), publish={svc.PG_PORT: port})
        stack.callback(engine.save_logs, pg, self.logs_dir / "postgres.log")
        engine.wait_healthy(pg, "postgres", READY_TIMEOUT_S)
        dsn = postgres.Dsn(
            LOOPBACK, port, postgres.SUPERUSER, self.values["POSTGRES_PASSWORD"], postgres.DB_NAME
        )
        db = ContainerDatabase(engine, pg, dsn)
        _await_connection(db)
        with ctx.rec.phase("migrate+seed"):
            self._migrate()
            ctx.question_ids = tuple(pollsdb.question_ids(dsn))
        if not ctx.question_ids:
            raise StackError("the seed created no questions", "see logs/migrate.log")
        return db

    def _migrate(self) -> None:
        container = self.engine.start(self._service("migrate"))
        code = self.engine.wait_exit(container, MANAGE_TIMEOUT_S)
        self.engine.save_logs(container, self.logs_dir / "migrate.log")
        if code != 0:
            raise StackError(f"migrate + seed exited with {code}", "see logs/migrate.log")

    def cell_facts(self, ctx: Context, cell: Cell) -> dict[str, Any]:
        service = self.project.service(svc.service_name(cell))
        return {"argv": list(service.command), "replicas": service.replicas}

    def start_cell(
        self, ctx: Context, stack: ExitStack, cell: Cell, label: str, db: Database
    ) -> CellStack:
        assert isinstance(db, ContainerDatabase)
        engine, logs = self.engine, self.logs_dir
        groups: dict[str, list[Any]] = {"postgres": [db.container]}
        if cell.upstream_ms:
            upstream = engine.start(self._service("upstream"), suffix=label)
            stack.callback(engine.save_logs, upstream, logs / f"upstream-{label}.log")
            engine.wait_healthy(upstream, f"the upstream of {label}", READY_TIMEOUT_S)
            groups["upstream"] = [upstream]
        groups["app"] = self._start_apps(stack, cell, label)
        self._record_versions(ctx, db)
        port = free_port()
        nginx = engine.start(self._nginx(ctx, cell, label, groups["app"]), suffix=label,
                             publish={svc.NGINX_PORT: port})  # fmt: skip
        stack.callback(engine.save_nginx_logs, nginx, logs, label)
        engine.wait_healthy(nginx, f"nginx in front of {label}", READY_TIMEOUT_S)
        groups["nginx"] = [nginx]
        return CellStack(
            dsn=db.dsn,
            app_database=postgres.DB_NAME,
            nginx_port=port,
            question_ids=ctx.question_ids,
            components=ComposeComponents(
                self, label, groups, postgres.DB_NAME, ctx.progress.ticking
            ),
            runtime=app.runtime_info(port),  # through nginx: the app port is not published
        )

    def _start_apps(self, stack: ExitStack, cell: Cell, label: str) -> list[Any]:
        service = self._service(svc.service_name(cell))
        apps = []
        for index in range(1, service.replicas + 1):
            container = self.engine.start(service, suffix=f"{label}-{index}")
            stack.callback(self.engine.save_logs, container, self.logs_dir / f"{label}-{index}.log")
            apps.append(container)
        for container in apps:
            self.engine.wait_healthy(container, f"{label} ({container.name})", READY_TIMEOUT_S)
        return apps

    def _nginx(self, ctx: Context, cell: Cell, label: str, apps: list[Any]) -> Service:
        """The front nginx with this cell's config, kept in conf/: request buffering per cell,
        and the app containers by address (each replica, as the `app` alias would resolve)."""
        upstreams = [f"{self.engine.address(a)}:{svc.APP_PORT}" for a in apps]
        text = svc.nginx_config(
            ctx.spec, request_buffering=cell.request_buffering, upstreams=upstreams
        )
        (ctx.run_dir / "conf").mkdir(exist_ok=True)
        (ctx.run_dir / "conf" / f"nginx-{label}.conf").write_text(text)
        base = self._service("nginx")
        files = tuple(dataclasses.replace(f, content=text) for f in base.files)
        return dataclasses.replace(base, files=files)

    def _record_versions(self, ctx: Context, db: ContainerDatabase) -> None:
        """What the images really run, once: the app image's packages from a one-shot container
        of it (an exec into a running one leaves Podman's conmon behind for minutes), the
        server's version from the server."""
        if self._versions_done:
            return
        packages = ["django", "locust", "psycopg2-binary",
                    *dict.fromkeys(p for s in REGISTRY.values() for p in s.packages)]  # fmt: skip
        app_image = self._service("migrate").image
        versions = ctx.rec.manifest.setdefault("versions", {})
        try:
            versions.update(json.loads(self.engine.run_once(app_image, versions_script(packages))))
        except (json.JSONDecodeError, StackError):
            versions["app image"] = "unknown (version probe failed)"
        versions["postgresql"] = _server_version(db.dsn)
        ctx.rec.save_manifest()
        self._versions_done = True


def _server_version(dsn: postgres.Dsn) -> str:
    conn = dsn.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT version()")
            row = cur.fetchone()
            return str(row[0]) if row else "unknown"
    finally:
        conn.close()


def _await_connection(db: ContainerDatabase) -> None:
    """The published port forwards a moment after the container is healthy inside."""
    deadline = time.monotonic() + CONNECT_TIMEOUT_S
    while True:
        try:
            db.dsn.connect("postgres").close()
            return
        except psycopg2.OperationalError as exc:
            problem = db.exit_problem()
            if problem is not None or time.monotonic() > deadline:
                raise problem or StackError(
                    f"PostgreSQL not reachable on {LOOPBACK}:{db.dsn.port}: {exc}".strip(),
                    "see logs/postgres.log",
                ) from None
        checkpoint()
        time.sleep(0.5)


def _step_timeout_s(load: LoadSettings) -> float:
    return locust_runner.run_time_cap_s(load) + load.stop_timeout_s + 60
