"""The Django polls app: its environment, one-shot management commands, and a server process."""

from __future__ import annotations

import json
import secrets
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gatewaybench.errors import StackError
from gatewaybench.matrix import Budget, Cell, Effective
from gatewaybench.servers import ServerArgs, ServerDef
from gatewaybench.spec import AppSource, DjangoSettings
from gatewaybench.stack import instances, process
from gatewaybench.stack.net import LOOPBACK, http_get, http_ok
from gatewaybench.stack.postgres import Dsn

SAMPLE_APP_DIR = Path(__file__).resolve().parents[2] / "sample_app"
HEALTH_PATH = "/healthz"
INFO_PATH = "/gbinfo"
MANAGE_TIMEOUT_S = 180
READY_TIMEOUT_S = 60


def bin_dir() -> Path:
    """Servers and Locust come from the same environment as the harness's interpreter."""
    return Path(sys.executable).parent


def psycopg3_dir(python: Path | None = None) -> Path:
    """psycopg 3 lives outside the environment: Django picks psycopg 3 whenever it can import
    it, so psycopg2 cells must not see it. It is put on PYTHONPATH for psycopg3 cells only."""
    return (python.parent.parent if python else Path(sys.prefix)) / "psycopg3"


def cell_variables(
    cell: Cell, eff: Effective, django: DjangoSettings, python: Path | None = None
) -> dict[str, str]:
    """What differs between cells, as the app reads it (sample_app/gbsite/settings.py)."""
    env = {
        "GB_VIEWS": cell.views,
        "GB_UPSTREAM_MS": str(cell.upstream_ms or 0),
        "GB_CONN_MAX_AGE": str(django.conn_max_age if cell.db == "persistent" else 0),
        "GB_DB_POOL_MAX": str(eff.pool_max),
    }
    if cell.resolved_driver == "psycopg3":
        env["PYTHONPATH"] = str(psycopg3_dir(python))
    return env


def upstream_variables(url: str, timeout_s: float) -> dict[str, str]:
    """Where the delayed upstream is; a call may wait as long as the client would."""
    return {"GB_UPSTREAM_URL": url, "GB_UPSTREAM_TIMEOUT_S": f"{timeout_s:g}"}


@dataclass(frozen=True)
class AppEnv:
    """The environment the app reads once at start-up. Secrets are per run and never recorded."""

    dsn: Dsn
    django: DjangoSettings
    secret_key: str
    source: AppSource = field(default_factory=AppSource)
    # Another checkout's sample app and environment (the gate's git-ref sides); None: ours.
    sample_root: Path | None = None
    python: Path = field(default_factory=lambda: Path(sys.executable))

    @classmethod
    def create(cls, dsn: Dsn, django: DjangoSettings, source: AppSource) -> AppEnv:
        return cls(dsn, django, secrets.token_urlsafe(50), source)

    @property
    def app_dir(self) -> Path:
        return self.source.app_dir or self.sample_root or SAMPLE_APP_DIR

    @property
    def bin_dir(self) -> Path:
        return self.python.parent

    def variables(self, base: Mapping[str, str]) -> dict[str, str]:
        env = dict(base)
        d = self.dsn
        env.update(
            {
                "GB_SECRET_KEY": self.secret_key,
                "GB_DB_NAME": d.dbname,
                "GB_DB_USER": d.user,
                "GB_DB_PASSWORD": d.password,
                "GB_DB_HOST": d.host,
                "GB_DB_PORT": str(d.port),
                # The same, for projects that read a URL (dj-database-url and friends).
                "DATABASE_URL": f"postgres://{d.user}:{d.password}@{d.host}:{d.port}/{d.dbname}",
                "GB_ALLOWED_HOSTS": f"{LOOPBACK},localhost",
                "GB_CPU_WORK_MS": f"{self.django.cpu_work_ms:g}",
                "GB_UPSTREAM_CALLS": str(self.django.upstream_calls),
                "GB_DB_WAIT_MS": str(self.django.db_wait_ms),
                "PYTHONUNBUFFERED": "1",
            }
        )
        if self.source.is_sample:
            env["DJANGO_SETTINGS_MODULE"] = "gbsite.settings"
        return env


def prepare_database(app_env: AppEnv, base_env: Mapping[str, str], logs: Path) -> None:
    """The sample app: migrate and seed the polls. Your own app: its --setup commands."""
    if app_env.source.is_sample:
        migrate_and_seed(app_env, base_env, logs)
        return
    env = app_env.variables(base_env)
    for index, command in enumerate(app_env.source.setup, start=1):
        process.run_to_completion(
            f"setup command {command!r}",
            setup_argv(command, app_env.python),
            log_path=logs / f"setup-{index}.log",
            timeout_s=MANAGE_TIMEOUT_S,
            cwd=app_env.app_dir,
            env=env,
        )


def setup_argv(command: str, python: Path | None = None) -> list[str]:
    """A setup command as argv, never through a shell: `manage.py migrate` runs with this
    environment's Python; anything else runs as given (found on PATH or in the app dir)."""
    argv = shlex.split(command)
    if argv and argv[0].endswith(".py"):
        return [str(python or sys.executable), *argv]
    return argv


def migrate_and_seed(app_env: AppEnv, base_env: Mapping[str, str], logs: Path) -> None:
    env = app_env.variables(base_env)
    manage = [str(app_env.python), "manage.py"]
    process.run_to_completion(
        "migrate",
        [*manage, "migrate", "--noinput"],
        log_path=logs / "migrate.log",
        timeout_s=MANAGE_TIMEOUT_S,
        cwd=app_env.app_dir,
        env=env,
    )
    process.run_to_completion(
        "seed",
        [
            *manage,
            "seed_polls",
            f"--questions={app_env.django.questions}",
            f"--choices={app_env.django.choices}",
        ],
        log_path=logs / "seed.log",
        timeout_s=MANAGE_TIMEOUT_S,
        cwd=app_env.app_dir,
        env=env,
    )


def runtime_info(port: int) -> dict[str, Any]:
    """The sample app's own account of what it runs (driver, pool, views, middleware)."""
    status, body = http_get(port, INFO_PATH, timeout_s=10)
    if status == 404:
        return {}  # an older sample app (a gate's git side) that predates /gbinfo
    if status != 200:
        raise StackError(f"GET {INFO_PATH} answered {status}", "see the app server's log")
    info: dict[str, Any] = json.loads(body)
    return info


def server_argv(
    server: ServerDef, port: int, budget: Budget, target: str = "", bins: Path | None = None
) -> list[str]:
    """The server's own argv, or, for a server with no workers option, N copies of it on one
    shared socket (gatewaybench.stack.instances) so it gets the same process budget."""
    bins = bins or bin_dir()
    if server.multi_process:
        args = ServerArgs(bins, LOOPBACK, port, budget.workers, budget.threads, target)
        return server.build_argv(args)
    one = ServerArgs(bins, LOOPBACK, port, 1, budget.threads, target, fd=instances.SHARED_FD)
    return [
        sys.executable,
        "-m",
        "gatewaybench.stack.instances",
        f"--count={budget.workers}",
        f"--host={LOOPBACK}",
        f"--port={port}",
        "--",
        *server.build_argv(one),
    ]


def start_server(
    server: ServerDef,
    argv: list[str],
    *,
    port: int,
    env: Mapping[str, str],
    logs: Path,
    cwd: Path = SAMPLE_APP_DIR,
    health_path: str = HEALTH_PATH,
    log_name: str = "",
) -> process.ManagedProcess:
    proc = process.start(
        server.name,
        argv,
        log_path=logs / f"{log_name or server.name}.log",
        cwd=cwd,
        env=env,
    )
    try:
        process.wait_until(
            proc,
            f"HTTP 200 from http://{LOOPBACK}:{port}{health_path}",
            lambda: http_ok(port, health_path),
            READY_TIMEOUT_S,
        )
    except BaseException:
        proc.stop()
        raise
    return proc
