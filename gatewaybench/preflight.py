"""Everything that can be checked before anything starts: binaries, ports, limits.

Errors here are usage errors (exit 2): the run directory has not been created yet.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from gatewaybench.errors import UsageError
from gatewaybench.load import knee_search
from gatewaybench.servers import REGISTRY
from gatewaybench.spec import RunSpec
from gatewaybench.stack import nginx, postgres, upstream
from gatewaybench.stack.app import SAMPLE_APP_DIR, bin_dir, psycopg3_dir
from gatewaybench.stack.net import claim_port

FDS_PER_USER = 2  # the client's socket, nginx's client-side socket (per worker process)
FD_MARGIN = 256


@dataclass(frozen=True)
class Resolved:
    """What preflight found: binaries and ports, recorded in the manifest."""

    pg_bins: postgres.Binaries
    nginx_bin: Path
    nginx_port: int
    pg_port: int
    app_port: int
    upstream_port: int = 0  # the delayed upstream's (0: the run has no upstream wait)
    echo_module: Path | None = None


def check(spec: RunSpec) -> Resolved:
    _check_python_tools(spec)
    pg_bins, _user = find_postgres()
    nginx_bin = nginx.find_nginx()
    echo_module = upstream.find_echo_module() if _waits_upstream(spec) else None
    raise_fd_limit(_most_in_flight(spec))
    ports = {
        "--nginx-port": claim_port("--nginx-port", spec.nginx.port),
        "--pg-port": claim_port("--pg-port", spec.postgres.port),
        "--app-port": claim_port("--app-port", spec.app_port),
    }
    if echo_module is not None:
        ports["upstream"] = claim_port("upstream", 0)
    if len(set(ports.values())) != len(ports):
        raise UsageError("two components were given the same port", "give each a distinct port")
    return Resolved(
        pg_bins,
        nginx_bin,
        ports["--nginx-port"],
        ports["--pg-port"],
        ports["--app-port"],
        ports.get("upstream", 0),
        echo_module,
    )


def _most_in_flight(spec: RunSpec) -> int:
    """Users (closed model; calibration's probes when auto) or sessions (the open model's cap)
    the generator may hold connections for at once."""
    load = spec.load
    most = max(load.users or (2 * knee_search.PROBE_MAX,)) if "closed" in load.models else 0
    return max(most, load.max_inflight if "open" in load.models else 0)


def _waits_upstream(spec: RunSpec) -> bool:
    return any(c.upstream_ms for c in spec.cells)


def _check_python_tools(spec: RunSpec) -> None:
    if spec.app.is_sample:
        check_sample_app()
    else:
        _check_own_app(spec)
    if any(c.resolved_driver == "psycopg3" for c in spec.cells):
        check_psycopg3()
    check_tools(["locust", *(REGISTRY[c.server].executable for c in spec.cells)])


# The checks below are also `gatewaybench doctor`'s, so a tool is checked one way.


def find_postgres() -> tuple[postgres.Binaries, str | None]:
    """The server binaries and the user they run as (None: as ourselves); raises when we are root
    and no unprivileged user exists."""
    bins = postgres.find_binaries()
    return bins, postgres.run_as_user()


def check_sample_app() -> None:
    if not (SAMPLE_APP_DIR / "manage.py").is_file():
        raise UsageError(f"sample app not found at {SAMPLE_APP_DIR}", "run from a full checkout")


def check_tools(tools: Iterable[str]) -> None:
    """Every one of `tools` is an executable in this environment; all missing ones are named."""
    missing = [t for t in dict.fromkeys(tools) if not os.access(bin_dir() / t, os.X_OK)]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise UsageError(
            f"{', '.join(missing)} {verb} not installed in {bin_dir()}",
            "run `make install` (or pip install -e .) and use that environment's python",
        )


def check_psycopg3() -> None:
    """psycopg 3 beside the environment, where only the cells that use it import it."""
    if not (psycopg3_dir() / "psycopg").is_dir():
        raise UsageError(
            f"psycopg 3 is not in {psycopg3_dir()} (the pool cells need it)", "run `make install`"
        )


def fds_needed(max_users: int) -> int:
    return max_users * FDS_PER_USER + FD_MARGIN


def check_fd_limit(max_users: int) -> tuple[int, int]:
    """The (soft, hard) file-descriptor limits; raises when even the hard one is too low."""
    needed = fds_needed(max_users)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise UsageError(
            f"file-descriptor limit {hard} is too low for {max_users} users (needs {needed})",
            f"raise it (ulimit -n {needed}, or limits.conf) or use fewer users",
        )
    return soft, hard


def raise_fd_limit(max_users: int) -> int:
    """Raise our soft file-descriptor limit to the hard one (children inherit it) and check it."""
    soft, hard = check_fd_limit(max_users)
    if soft < fds_needed(max_users):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft


def _check_own_app(spec: RunSpec) -> None:
    """--app-dir and friends: every path exists and every cell has a target to serve."""
    app = spec.app
    assert app.app_dir is not None
    if not app.app_dir.is_dir():
        raise UsageError(f"--app-dir {app.app_dir} is not a directory", "give your project's path")
    if app.locustfile is None or not app.locustfile.is_file():
        raise UsageError(
            f"--locustfile {app.locustfile or '(missing)'} is not a file",
            "give your app's Locust scenario with --locustfile",
        )
    for cell in spec.cells:
        target = app.wsgi if cell.interface == "wsgi" else app.asgi
        if ":" not in target:
            flag = "--wsgi" if cell.interface == "wsgi" else "--asgi"
            raise UsageError(
                f"{cell.label} is {cell.interface.upper()} but {flag} is {target or 'not given'}",
                f"pass {flag} module:attribute, or leave out {cell.interface.upper()} servers",
            )
        if cell.views != "sync":
            raise UsageError(
                f"{cell.label}: views variants apply to the sample app only", "use sync"
            )
    if not app.health_path.startswith("/"):
        raise UsageError(f"--health-path {app.health_path!r} must start with /", "e.g. /healthz")
