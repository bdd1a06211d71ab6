"""`gatewaybench doctor`: is this machine ready to run a bench? Each check says how to fix it."""

from __future__ import annotations

import os
import resource
from collections.abc import Callable
from typing import TextIO

from gatewaybench.errors import GatewaybenchError
from gatewaybench.servers import REGISTRY
from gatewaybench.spec import SEED_USERS
from gatewaybench.stack import nginx, postgres, upstream
from gatewaybench.stack.app import SAMPLE_APP_DIR, bin_dir, psycopg3_dir
from gatewaybench.stack.net import free_port


def _postgres() -> str:
    bins = postgres.find_binaries()
    user = postgres.run_as_user()
    runs_as = f"runs as {user}" if user else "runs as you"
    return f"{postgres.server_version(bins)} in {bins.bindir} ({runs_as})"


def _nginx() -> str:
    binary = nginx.find_nginx()
    return f"nginx {nginx.nginx_version(binary)} at {binary}"


def _echo_module() -> str:
    return f"nginx's echo module at {upstream.find_echo_module()} (the delayed upstream)"


def _python_tools() -> str:
    missing = [
        t
        for t in ["locust", *dict.fromkeys(s.executable for s in REGISTRY.values())]
        if not os.access(bin_dir() / t, os.X_OK)
    ]
    if missing:
        raise GatewaybenchError(
            f"missing in {bin_dir()}: {', '.join(missing)}", "run `make install`"
        )
    if not (SAMPLE_APP_DIR / "manage.py").is_file():
        raise GatewaybenchError(f"no sample app at {SAMPLE_APP_DIR}", "use a full checkout")
    return f"locust and {len(REGISTRY)} servers in {bin_dir()}"


def _drivers() -> str:
    """psycopg2 in the environment, psycopg 3 beside it and not in it (see stack/app.py)."""
    import importlib.util

    if importlib.util.find_spec("psycopg") is not None:
        raise GatewaybenchError(
            "psycopg 3 is importable in the harness environment: every cell would run it",
            "pip uninstall psycopg psycopg-binary psycopg-pool (make install puts it apart)",
        )
    if not (psycopg3_dir() / "psycopg").is_dir():
        raise GatewaybenchError(f"psycopg 3 is not in {psycopg3_dir()}", "run `make install`")
    return f"psycopg2 in the environment; psycopg 3 apart in {psycopg3_dir()}"


def _ports() -> str:
    return f"a free loopback port is available (e.g. {free_port()})"


def _fd_limit() -> str:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = max(SEED_USERS) * 2 + 256
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise GatewaybenchError(
            f"file-descriptor hard limit {hard} < {needed} needed for {max(SEED_USERS)} users",
            f"raise it: ulimit -Hn {needed} (or /etc/security/limits.conf)",
        )
    return f"file descriptors: soft {soft}, hard {hard} (>= {needed} needed; raised at run time)"


CHECKS: tuple[tuple[str, Callable[[], str]], ...] = (
    ("postgres", _postgres),
    ("nginx", _nginx),
    ("nginx echo module", _echo_module),
    ("python tools", _python_tools),
    ("database drivers", _drivers),
    ("ports", _ports),
    ("fd limit", _fd_limit),
)


def run_doctor(out: TextIO) -> int:
    failures = 0
    for name, check in CHECKS:
        try:
            print(f"ok    {name}: {check()}", file=out)
        except GatewaybenchError as exc:
            failures += 1
            print(f"FAIL  {name}: {exc.one_line()}", file=out)
    print("all checks passed" if not failures else f"{failures} check(s) failed", file=out)
    return 0 if not failures else 1
