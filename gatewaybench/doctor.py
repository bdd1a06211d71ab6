"""`gatewaybench doctor`: is this machine ready to run a bench? Each check says how to fix it."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import TextIO

from gatewaybench import preflight
from gatewaybench.errors import GatewaybenchError
from gatewaybench.servers import REGISTRY
from gatewaybench.spec import SEED_USERS
from gatewaybench.stack import nginx, postgres, upstream
from gatewaybench.stack.app import bin_dir, psycopg3_dir
from gatewaybench.stack.net import free_port


def _postgres() -> str:
    bins, user = preflight.find_postgres()
    runs_as = f"runs as {user}" if user else "runs as you"
    return f"{postgres.server_version(bins)} in {bins.bindir} ({runs_as})"


def _nginx() -> str:
    binary = nginx.find_nginx()
    return f"nginx {nginx.nginx_version(binary)} at {binary}"


def _echo_module() -> str:
    return f"nginx's echo module at {upstream.find_echo_module()} (the delayed upstream)"


def _python_tools() -> str:
    preflight.check_tools(["locust", *(s.executable for s in REGISTRY.values())])
    preflight.check_sample_app()
    return f"locust and {len(REGISTRY)} servers in {bin_dir()}"


def _drivers() -> str:
    """psycopg2 in the environment, psycopg 3 beside it and not in it (see stack/app.py)."""
    if importlib.util.find_spec("psycopg") is not None:
        raise GatewaybenchError(
            "psycopg 3 is importable in the harness environment: every cell would run it",
            "pip uninstall psycopg psycopg-binary psycopg-pool (make install puts it apart)",
        )
    preflight.check_psycopg3()
    return f"psycopg2 in the environment; psycopg 3 apart in {psycopg3_dir()}"


def _ports() -> str:
    return f"a free loopback port is available (e.g. {free_port()})"


def _fd_limit() -> str:
    # The largest seed step: a run raises the soft limit itself, the hard one must allow it.
    users = max(SEED_USERS)
    soft, hard = preflight.check_fd_limit(users)
    needed = preflight.fds_needed(users)
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
