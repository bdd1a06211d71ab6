"""nginx in front of the app server: config rendering (pure) and the supervised process."""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import jinja2

from gatewaybench.errors import StackError, UsageError
from gatewaybench.results.stale import temp_prefix
from gatewaybench.spec import NginxSettings
from gatewaybench.stack import process
from gatewaybench.stack.net import LOOPBACK, http_ok

TEMPLATE = Path(__file__).resolve().parents[2] / "nginx" / "nginx.conf.j2"
NGINX_CANDIDATES = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")
READY_TIMEOUT_S = 30
WORKER_USER_CANDIDATES = ("www-data", "nobody")


@dataclass(frozen=True)
class NginxFiles:
    conf: Path
    pid: Path
    error_log: Path
    access_log: Path | None
    temp_dir: Path


def find_nginx() -> Path:
    found = shutil.which("nginx")
    for candidate in [found, *NGINX_CANDIDATES]:
        if candidate and os.access(candidate, os.X_OK):
            return Path(candidate)
    raise UsageError(
        "nginx not found",
        "run `make sysdeps` as root, or install it (Debian/Ubuntu: apt-get install nginx)",
    )


def nginx_version(binary: Path) -> str:
    out = subprocess.run(
        [str(binary), "-v"], capture_output=True, text=True, check=False, timeout=10
    )
    match = re.search(r"nginx/(\S+)", out.stderr + out.stdout)
    return match.group(1) if match else "unknown"


def worker_user() -> tuple[str, str] | None:
    """nginx's workers drop privileges only when the master is root; pick an existing user."""
    if os.geteuid() != 0:
        return None
    for name in WORKER_USER_CANDIDATES:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return name, grp.getgrgid(entry.pw_gid).gr_name
    raise UsageError("no unprivileged user for nginx workers", "create www-data or nobody")


def render_config(
    settings: NginxSettings,
    *,
    listen: str,
    upstreams: Sequence[str],
    files: NginxFiles,
    user: tuple[str, str] | None,
    request_buffering: bool = True,
) -> str:
    return render_template(
        TEMPLATE,
        user=user[0] if user else None,
        group=user[1] if user else None,
        worker_processes=settings.worker_processes,
        worker_connections=settings.worker_connections,
        pid_path=files.pid,
        error_log=files.error_log,
        access_log=files.access_log,
        temp_dir=files.temp_dir,
        upstreams=upstreams,
        upstream_keepalive=settings.upstream_keepalive,
        listen=listen,
        listen_backlog=settings.listen_backlog,
        request_buffering=request_buffering,
        proxy_connect_timeout_s=settings.proxy_connect_timeout_s,
        proxy_read_timeout_s=settings.proxy_read_timeout_s,
    )


def render_template(template: Path, **values: object) -> str:
    """An nginx config from one of the templates in nginx/ (every variable must be given)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(template.parent),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701  (renders nginx config, not HTML)
    )
    return env.get_template(template.name).render(**values)


def local_files(
    conf_dir: Path, logs: Path, temp_dir: Path, name: str, access_log: bool
) -> NginxFiles:
    return NginxFiles(
        conf=conf_dir / f"nginx-{name}.conf",
        pid=temp_dir / "nginx.pid",
        error_log=logs / f"nginx-{name}-error.log",
        access_log=logs / f"nginx-{name}-access.log" if access_log else None,
        temp_dir=temp_dir,
    )


@contextmanager
def running_nginx(
    binary: Path,
    settings: NginxSettings,
    *,
    port: int,
    upstream_port: int,
    conf_dir: Path,
    logs: Path,
    name: str,
    health_path: str = "/healthz",
    request_buffering: bool = True,
    env: Mapping[str, str] | None = None,
) -> Iterator[process.ManagedProcess]:
    """Render the config for this server, start nginx, wait for the app's health path through
    it, stop it."""
    temp_dir = Path(make_prefix_dir())
    files = local_files(conf_dir, logs, temp_dir, name, settings.access_log)
    files.conf.write_text(
        render_config(
            settings,
            listen=f"{LOOPBACK}:{port}",
            upstreams=[f"{LOOPBACK}:{upstream_port}"],
            files=files,
            user=worker_user(),
            request_buffering=request_buffering,
        )
    )
    with supervised(
        binary, files.conf, temp_dir, files.error_log, name=f"nginx ({name})",
        log_path=logs / f"nginx-{name}.log", port=port, health_path=health_path,
        what="through nginx", env=env,
    ) as proc:  # fmt: skip
        yield proc


@contextmanager
def supervised(
    binary: Path,
    conf: Path,
    prefix: Path,
    error_log: Path,
    *,
    name: str,
    log_path: Path,
    port: int,
    health_path: str,
    what: str,
    env: Mapping[str, str] | None = None,
) -> Iterator[process.ManagedProcess]:
    """An nginx master on a rendered config, awaited on its health path, then stopped and its
    prefix (temp) directory removed: the front nginx and the delayed upstream alike. `env`: the
    run's child environment (with the run marker); None: this process's."""
    argv = [str(binary), "-p", str(prefix), "-e", str(error_log), "-c", str(conf)]
    proc = process.start(name, argv, log_path=log_path, env=env)
    try:
        process.wait_until(
            proc,
            f"HTTP 200 from http://{LOOPBACK}:{port}{health_path} {what}",
            lambda: http_ok(port, health_path),
            READY_TIMEOUT_S,
        )
        yield proc
    finally:
        proc.stop()
        shutil.rmtree(prefix, ignore_errors=True)


def make_prefix_dir() -> str:
    path = tempfile.mkdtemp(prefix=temp_prefix("nginx"))
    os.chmod(path, 0o755)  # noqa: S103  (workers (an unprivileged user when we are root) use the temp paths)
    return path


def check_config(binary: Path, conf: Path, prefix: Path, error_log: Path) -> None:
    """`nginx -t` on a rendered config (the tests check every rendering with it)."""
    out = subprocess.run(
        [str(binary), "-t", "-p", str(prefix), "-e", str(error_log), "-c", str(conf)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    if out.returncode != 0:
        raise StackError("nginx rejected the rendered config", f"see {conf}", out.stderr)
