"""The delayed upstream API: a second nginx whose echo module answers after the delay a request
asks for (`GET /sleep?s=0.100`). It stands for the database, service or API a real view waits on.

One nginx worker holds thousands of sleeping requests (echo_sleep is a timer in its event loop,
no thread per request), so it is never the bottleneck; every step shows that from the upstream's
own access log (gatewaybench.analysis.upstreamlog). Config rendering is pure; starting is here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from gatewaybench.errors import UsageError
from gatewaybench.stack import process
from gatewaybench.stack.net import LOOPBACK
from gatewaybench.stack.nginx import make_prefix_dir, render_template, supervised, worker_user

TEMPLATE = Path(__file__).resolve().parents[2] / "nginx" / "upstream.conf.j2"
ECHO_MODULE_CANDIDATES = (
    "/usr/lib/nginx/modules/ngx_http_echo_module.so",  # Debian/Ubuntu libnginx-mod-http-echo
    "/usr/lib64/nginx/modules/ngx_http_echo_module.so",
)
ECHO_FIX = "run `make sysdeps` as root, or install it: apt-get install libnginx-mod-http-echo"
WORKER_CONNECTIONS = 8192  # app connections kept alive: far above any step's concurrency
LISTEN_BACKLOG = 4096
HEALTH_PATH = "/healthz"


def find_echo_module() -> Path:
    for candidate in ECHO_MODULE_CANDIDATES:
        if Path(candidate).is_file():
            return Path(candidate)
    raise UsageError("nginx's echo module (the delayed upstream's) is not installed", ECHO_FIX)


@dataclass(frozen=True)
class UpstreamFiles:
    conf: Path
    pid: Path
    error_log: Path
    access_log: Path
    temp_dir: Path


def render_config(
    *, echo_module: str, listen: str, files: UpstreamFiles, user: tuple[str, str] | None
) -> str:
    return render_template(
        TEMPLATE,
        echo_module=echo_module,
        user=user[0] if user else None,
        group=user[1] if user else None,
        pid_path=files.pid,
        error_log=files.error_log,
        access_log=files.access_log,
        temp_dir=files.temp_dir,
        worker_connections=WORKER_CONNECTIONS,
        listen=listen,
        listen_backlog=LISTEN_BACKLOG,
    )


def local_files(conf_dir: Path, logs: Path, temp_dir: Path, name: str) -> UpstreamFiles:
    return UpstreamFiles(
        conf=conf_dir / f"upstream-{name}.conf",
        pid=temp_dir / "upstream.pid",
        error_log=logs / f"upstream-{name}-error.log",
        access_log=logs / f"upstream-{name}-access.log",
        temp_dir=temp_dir,
    )


@dataclass(frozen=True)
class Upstream:
    proc: process.ManagedProcess
    port: int
    files: UpstreamFiles

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"


@contextmanager
def running_upstream(
    binary: Path,
    echo_module: Path,
    *,
    port: int,
    conf_dir: Path,
    logs: Path,
    name: str,
    env: Mapping[str, str] | None = None,
) -> Iterator[Upstream]:
    """Render the config, start the upstream nginx, wait for its health path, stop it. One per
    cell's stack, like the front nginx: its log and its fate belong to that cell."""
    temp_dir = Path(make_prefix_dir())
    files = local_files(conf_dir, logs, temp_dir, name)
    files.conf.write_text(
        render_config(
            echo_module=str(echo_module),
            listen=f"{LOOPBACK}:{port}",
            files=files,
            user=worker_user(),
        )
    )
    with supervised(
        binary, files.conf, temp_dir, files.error_log, name=f"upstream ({name})",
        log_path=logs / f"upstream-{name}.log", port=port, health_path=HEALTH_PATH,
        what="(the delayed upstream)", env=env,
    ) as proc:  # fmt: skip
        yield Upstream(proc, port, files)
