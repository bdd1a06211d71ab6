"""The Django polls app: its environment, one-shot management commands, and a server process."""

from __future__ import annotations

import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gatewaybench.servers import ServerArgs, ServerDef, effective_workers
from gatewaybench.spec import DjangoSettings
from gatewaybench.stack import process
from gatewaybench.stack.net import LOOPBACK, http_ok
from gatewaybench.stack.postgres import Dsn

SAMPLE_APP_DIR = Path(__file__).resolve().parents[2] / "sample_app"
HEALTH_PATH = "/healthz"
MANAGE_TIMEOUT_S = 180
READY_TIMEOUT_S = 60


def bin_dir() -> Path:
    """Servers and Locust come from the same environment as the harness's interpreter."""
    return Path(sys.executable).parent


@dataclass(frozen=True)
class AppEnv:
    """The environment the app reads once at start-up. Secrets are per run and never recorded."""

    dsn: Dsn
    django: DjangoSettings
    secret_key: str

    @classmethod
    def create(cls, dsn: Dsn, django: DjangoSettings) -> AppEnv:
        return cls(dsn, django, secrets.token_urlsafe(50))

    def variables(self, base: Mapping[str, str]) -> dict[str, str]:
        env = dict(base)
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "gbsite.settings",
                "GB_SECRET_KEY": self.secret_key,
                "GB_DB_NAME": self.dsn.dbname,
                "GB_DB_USER": self.dsn.user,
                "GB_DB_PASSWORD": self.dsn.password,
                "GB_DB_HOST": self.dsn.host,
                "GB_DB_PORT": str(self.dsn.port),
                "GB_CONN_MAX_AGE": str(self.django.conn_max_age),
                "GB_ALLOWED_HOSTS": f"{LOOPBACK},localhost",
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env


def migrate_and_seed(app_env: AppEnv, base_env: Mapping[str, str], logs: Path) -> None:
    env = app_env.variables(base_env)
    manage = [sys.executable, "manage.py"]
    process.run_to_completion(
        "migrate",
        [*manage, "migrate", "--noinput"],
        log_path=logs / "migrate.log",
        timeout_s=MANAGE_TIMEOUT_S,
        cwd=SAMPLE_APP_DIR,
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
        cwd=SAMPLE_APP_DIR,
        env=env,
    )


def server_argv(server: ServerDef, port: int, workers: int) -> list[str]:
    args = ServerArgs(bin_dir(), LOOPBACK, port, effective_workers(server, workers))
    return server.build_argv(args)


def start_server(
    server: ServerDef,
    *,
    port: int,
    workers: int,
    app_env: AppEnv,
    base_env: Mapping[str, str],
    logs: Path,
) -> process.ManagedProcess:
    proc = process.start(
        server.name,
        server_argv(server, port, workers),
        log_path=logs / f"{server.name}.log",
        cwd=SAMPLE_APP_DIR,
        env=app_env.variables(base_env),
    )
    try:
        process.wait_until(
            proc,
            f"HTTP 200 from http://{LOOPBACK}:{port}{HEALTH_PATH}",
            lambda: http_ok(port, HEALTH_PATH, "ok"),
            READY_TIMEOUT_S,
        )
    except BaseException:
        proc.stop()
        raise
    return proc
