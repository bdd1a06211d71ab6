"""Failures, explained: what the client saw (kind), who caused it (source) and why (cause).

The client's error text says *what* failed; the logs of nginx, the app server, Django and
PostgreSQL written during the same step say *why*. Attribution is rule-based and cites the log
line it relied on; a failure with no evidence says so rather than guessing.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

FAILURE_COLUMNS = (
    "server", "repeat", "users", "kind", "count", "source", "cause", "example", "evidence",
    "rate",
)  # fmt: skip

HTTP_RE = re.compile(r"^HTTP (\d{3}):")
EXC_RE = re.compile(r"^\s*(?:[\w.]+\.)?(\w+(?:Error|Exception)): (.+)$", re.MULTILINE)


@dataclass
class FailureRow:
    server: str
    repeat: int
    users: int
    kind: str
    count: int
    source: str
    cause: str
    example: str
    evidence: str = ""
    rate: float = math.nan  # an open-model step's arrivals/s (users is then 0)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Evidence:
    """Counted log patterns from one step's slice of each component's log."""

    nginx: Counter[str] = field(default_factory=Counter)
    app: Counter[str] = field(default_factory=Counter)
    postgres: Counter[str] = field(default_factory=Counter)
    exceptions: Counter[str] = field(default_factory=Counter)  # "Class: message" from app log


NGINX_PATTERNS = {
    "worker_connections": "worker_connections are not enough",
    "upstream_timeout": "upstream timed out",
    "upstream_refused": "Connection refused) while connecting to upstream",
    "upstream_closed": "upstream prematurely closed connection",
    "no_live_upstreams": "no live upstreams",
    "too_many_files": "Too many open files",
}
PG_PATTERNS = {
    "too_many_clients": "too many clients already",
    "reserved_slots": "remaining connection slots are reserved",
}
APP_PATTERNS = {"worker_timeout": "WORKER TIMEOUT", **PG_PATTERNS}


def gather_evidence(nginx_error: str, app_log: str, postgres_log: str) -> Evidence:
    ev = Evidence()
    for key, needle in NGINX_PATTERNS.items():
        ev.nginx[key] = nginx_error.count(needle)
    for key, needle in PG_PATTERNS.items():
        ev.postgres[key] = postgres_log.count(needle)
    for key, needle in APP_PATTERNS.items():
        ev.app[key] = app_log.count(needle)
    for match in EXC_RE.finditer(app_log):
        ev.exceptions[f"{match.group(1)}: {match.group(2).strip()[:160]}"] += 1
    return ev


def classify(message: str) -> str:
    """The kind of a client-side failure message (see fail() in loadtests/polls.py)."""
    http = HTTP_RE.match(message)
    if http:
        code = int(http.group(1))
        return "unexpected content (HTTP 200)" if code == 200 else f"HTTP {code}"
    lower = message.lower()
    for kind, needles in (
        ("timeout", ("timeout", "timed out")),
        ("connection refused", ("refused", "errno 111")),
        ("connection reset", ("reset", "errno 104")),
        ("connection closed", ("closed", "broken pipe", "remotedisconnected", "errno 32")),
    ):
        if any(n in lower for n in needles):
            return kind
    return "other"


def _pg_exhausted(ev: Evidence, max_connections: int) -> tuple[str, str] | None:
    hits = ev.postgres["too_many_clients"] + ev.postgres["reserved_slots"]
    hits_app = ev.app["too_many_clients"] + ev.app["reserved_slots"]
    if not (hits or hits_app):
        return None
    line = "too many clients" if ev.postgres["too_many_clients"] else "reserved slots"
    return (
        f"PostgreSQL max_connections ({max_connections}) exhausted: new connections refused",
        f"postgres log FATAL '{line}' x{hits}; app log x{hits_app}",
    )


Attribution = tuple[str, str, str]  # (source, cause, evidence)


def _http_500(ev: Evidence, knobs: dict[str, Any]) -> Attribution:
    pg = _pg_exhausted(ev, knobs["pg_max_connections"])
    if pg:
        return "PostgreSQL", *pg
    if ev.exceptions:
        exc, n = ev.exceptions.most_common(1)[0]
        return "Django", f"unhandled exception {exc}", f"app log x{n}"
    return "app server", "HTTP 500 with no exception in the app log", ""


def _bad_gateway(kind: str, ev: Evidence, knobs: dict[str, Any]) -> Attribution:
    causes = {
        "upstream_timeout": "app server slower than nginx proxy_read_timeout "
        f"({knobs['proxy_read_timeout_s']} s)",
        "upstream_closed": "app server closed the connection mid-request (worker killed?)",
        "upstream_refused": "app server refused the connection (down or backlog full)",
        "no_live_upstreams": "nginx marked the app server unavailable",
    }
    if ev.app["worker_timeout"]:
        causes["upstream_closed"] = (
            f"gunicorn WORKER TIMEOUT killed workers x{ev.app['worker_timeout']}"
        )
    for key, cause in causes.items():
        if ev.nginx[key]:
            return "app server", cause, f"nginx error log '{NGINX_PATTERNS[key]}' x{ev.nginx[key]}"
    return "nginx", f"{kind} with no upstream error in nginx's log", ""


def _connection(kind: str, ev: Evidence, knobs: dict[str, Any]) -> Attribution:
    if ev.nginx["worker_connections"]:
        return (
            "nginx",
            f"nginx worker_connections ({knobs['nginx_worker_connections']}) are not enough",
            f"nginx error log '{NGINX_PATTERNS['worker_connections']}' "
            f"x{ev.nginx['worker_connections']}",
        )
    if ev.nginx["too_many_files"]:
        return "nginx", "nginx ran out of file descriptors", "nginx error log"
    return "nginx", f"{kind} before any response; no nginx log evidence", ""


def _timeout(knobs: dict[str, Any]) -> Attribution:
    return (
        "client",
        f"no response within the client timeout ({knobs['client_timeout_s']:g} s): "
        "requests queued behind a saturated server",
        "",
    )


def attribute(kind: str, ev: Evidence, knobs: dict[str, Any]) -> Attribution:
    """(source, cause, evidence) for one failure kind."""
    if kind == "HTTP 500":
        return _http_500(ev, knobs)
    if kind in ("HTTP 502", "HTTP 504"):
        return _bad_gateway(kind, ev, knobs)
    if kind.startswith("connection"):
        return _connection(kind, ev, knobs)
    if kind == "timeout":
        return _timeout(knobs)
    simple = {
        "HTTP 403": ("Django", "CSRF verification failed", ""),
        "unexpected content (HTTP 200)": ("Django", "the page lacked the expected content", ""),
    }
    return simple.get(kind, ("unknown", "no rule explains this failure", ""))


def failure_rows(
    errors: Counter[str],
    ev: Evidence,
    knobs: dict[str, Any],
    *,
    server: str,
    repeat: int,
    users: int,
    rate: float = math.nan,
) -> list[FailureRow]:
    """Group a step's window failures (message -> count) by kind, each attributed."""
    by_kind: dict[str, Counter[str]] = {}
    for message, count in errors.items():
        by_kind.setdefault(classify(message), Counter())[message] += count
    rows = []
    for kind, messages in sorted(by_kind.items(), key=lambda kv: -sum(kv[1].values())):
        source, cause, evidence = attribute(kind, ev, knobs)
        example = messages.most_common(1)[0][0]
        rows.append(
            FailureRow(
                server,
                repeat,
                users,
                kind,
                sum(messages.values()),
                source,
                cause,
                example[:200],
                evidence,
                rate,
            )
        )
    return rows
