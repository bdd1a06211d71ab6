"""Every `run` setting, declared once: its flag, its GATEWAYBENCH_* variable, its config key.

The converters turn text (from argv, the environment, or a config value rendered as text) into
the value the spec holds; each raises argparse.ArgumentTypeError or UsageError on bad input.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gatewaybench.spec import (
    parse_cells,
    parse_dbs,
    parse_models,
    parse_rates,
    parse_servers,
    parse_steps,
    parse_views,
    parse_waits,
)


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def _processes(text: str) -> int:
    """A positive count, or 'auto' (0): scale Locust's processes with its CPU use."""
    return 0 if text == "auto" else _int(text)


@dataclass(frozen=True)
class Flag:
    flag: str
    convert: Callable[[str], Any] | None  # None: a switch (store_true)
    kind: str  # the TOML type a config file must use (see config.to_flag_text)
    help: str

    @property
    def dest(self) -> str:
        return self.flag[2:].replace("-", "_")


def _path(text: str) -> Path:
    return Path(text)


def _text(text: str) -> str:
    return text


def _users(text: str) -> tuple[int, ...]:
    return () if text.strip() == "auto" else parse_steps(text)


def _rates(text: str) -> tuple[float, ...]:
    return () if text.strip() == "auto" else parse_rates(text)


def _buffering(text: str) -> tuple[bool, ...]:
    """`on`, `off` or `on,off`: nginx's proxy_request_buffering, a dimension of the matrix."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names or any(n not in ("on", "off") for n in names) or len(set(names)) < len(names):
        raise argparse.ArgumentTypeError(f"{text!r}: give on, off or on,off")
    return tuple(n == "on" for n in names)


def _max_connections(text: str) -> int:
    return 0 if text == "auto" else _int(text)


def _commands(text: str) -> tuple[str, ...]:
    """Commands in one string: `;` or a newline separates them (`"migrate; loaddata x"`)."""
    return tuple(c.strip() for c in text.replace("\n", ";").split(";") if c.strip())


# Every `run` setting, once: the CLI flag, its GATEWAYBENCH_* variable and its config-file key.
RUN_FLAGS = (
    Flag("--preset", _text, "str", "seed (default), tuned or all"),
    Flag("--config", _path, "str", "TOML file describing the matrix; flags override it"),
    Flag("--cells", parse_cells, "list", "explicit cells: server[+views][+db][+driver],..."),
    Flag("--servers", parse_servers, "list", "servers, crossed with --views and --db"),
    Flag("--views", parse_views, "list", "sync,async (async only for ASGI servers)"),
    Flag("--db", parse_dbs, "list", "close,persistent,pool (Django connection strategy)"),
    Flag("--users", _users, "list", "steps: 100,200 or 100:700:100, or 'auto' (calibrate)"),
    Flag("--auto-steps", _int, "int", "with --users auto: steps bracketing the knees (default 7)"),
    Flag(
        "--model",
        parse_models,
        "list",
        "closed (default: users who wait), open (arrivals that do not), or closed,open",
    ),
    Flag("--rate", _rates, "list", "open model: arrivals/s per step, 5,10,20 or 10:50:10, or auto"),
    Flag(
        "--max-inflight",
        _int,
        "int",
        "open model: sessions in flight at most; arrivals beyond "
        "are dropped and counted (default 1000)",
    ),
    Flag(
        "--arrival",
        _text,
        "str",
        "what an arrival (or a user's iteration) runs: session "
        "(the polls scenario, default) or request (one GET of --arrival-path)",
    ),
    Flag("--arrival-path", _text, "str", "the page --arrival request gets (default /polls/)"),
    Flag("--arrival-seed", _int, "int", "open model: the Poisson arrivals' seed (default 1)"),
    Flag("--upstream-ms", parse_waits, "list", "upstream waits per request, ms: 0,20,100,300"),
    Flag("--upstream-calls", _int, "int", "upstream calls per request (default 1)"),
    Flag("--db-wait-ms", _int, "int", "pg_sleep in the vote's transaction, ms (default 0)"),
    Flag("--slow-upload-pct", _int, "int", "percent of users uploading a body slowly (default 0)"),
    Flag("--slow-upload-kb", _int, "int", "size of a slow upload, KB (default 64)"),
    Flag("--slow-upload-kbps", _float, "float", "rate of a slow upload, KB/s (default 16)"),
    Flag(
        "--request-buffering",
        _buffering,
        "list",
        "nginx proxy_request_buffering: on, off, on,off",
    ),
    Flag("--workers", _int, "int", "worker processes per server (default: cores)"),
    Flag("--threads", _int, "int", "threads per worker (default: the preset's)"),
    Flag("--ramp", _float, "float", "seconds to spawn a step's users"),
    Flag("--warmup", _float, "float", "seconds after spawning, excluded"),
    Flag("--window", _int, "int", "steady-state window, whole seconds"),
    Flag("--client-timeout", _float, "float", "seconds per request"),
    Flag("--stop-timeout", _float, "float", "seconds in-flight requests get when a step ends"),
    Flag("--processes", _processes, "int_or_auto", "Locust processes, or 'auto'"),
    Flag("--slo-ms", _float, "float", "p95 limit for capacity; slow_pct line"),
    Flag("--capacity-fail-pct", _float, "float", "failure %% limit for capacity"),
    Flag("--repeat", _int, "int", "run the matrix N times, cells interleaved"),
    Flag("--label", _text, "str", "suffix of the run directory name"),
    Flag("--reports-dir", _path, "str", "where run directories go (default: reports)"),
    Flag("--nginx-worker-processes", _text, "str", "nginx worker_processes (default: auto)"),
    Flag("--nginx-worker-connections", _int, "int", "nginx worker_connections"),
    Flag("--nginx-backlog", _int, "int", "nginx listen backlog"),
    Flag("--nginx-port", _int, "int", "0: a free port"),
    Flag("--no-access-log", None, "bool", "turn nginx's access log (and its cross-check) off"),
    Flag("--pg-max-connections", _max_connections, "int_or_auto", "'auto': from the budget"),
    Flag("--pg-port", _int, "int", "0: a free port"),
    Flag("--app-port", _int, "int", "0: a free port"),
    Flag("--conn-max-age", _int, "int", "CONN_MAX_AGE seconds for persistent cells"),
    Flag("--cpu-work-ms", _float, "float", "CPU ms added per request (sample app; default 0)"),
    Flag("--questions", _int, "int", "polls seeded"),
    Flag("--choices", _int, "int", "choices per poll"),
    Flag("--app-dir", _path, "str", "bring your own app: the project directory"),
    Flag("--wsgi", _text, "str", "your app's WSGI target, module:attribute"),
    Flag("--asgi", _text, "str", "your app's ASGI target, module:attribute"),
    Flag("--locustfile", _path, "str", "your app's Locust scenario"),
    Flag(
        "--setup",
        _commands,
        "commands",
        "commands run once before load, ';'-separated, e.g. 'manage.py migrate'",
    ),
    Flag("--health-path", _text, "str", "a path that answers 200 when your app is up"),
)
FLAGS_BY_DEST = {f.dest: f for f in RUN_FLAGS}
