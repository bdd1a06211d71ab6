from __future__ import annotations

from collections import Counter

import pytest

from gatewaybench.analysis.failures import classify, failure_rows, gather_evidence

KNOBS = {
    "pg_max_connections": 20,
    "nginx_worker_connections": 64,
    "proxy_read_timeout_s": 60,
    "client_timeout_s": 10.0,
}


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("HTTP 500: expected 200, got 500", "HTTP 500"),
        ("HTTP 502: expected 302 to results, got 502", "HTTP 502"),
        ("HTTP 200: expected 302 to results, got 200", "unexpected content (HTTP 200)"),
        ("TimeoutError: timed out", "timeout"),
        ("ConnectionRefusedError: [Errno 111] Connection refused", "connection refused"),
        ("ConnectionResetError: [Errno 104] Connection reset by peer", "connection reset"),
        ("HTTPConnectionClosed: connection closed.", "connection closed"),
        ("BrokenPipeError: [Errno 32] Broken pipe", "connection closed"),
        ("KeyError: 'x'", "other"),
    ],
)
def test_classify(message: str, kind: str) -> None:
    assert classify(message) == kind


def test_http_500_from_exhausted_postgres_is_attributed_to_postgres() -> None:
    app_log = (
        "2026-11-21T02:58:54.801Z ERROR django.request pid=1 Internal Server Error: /polls/1/\n"
        "Traceback (most recent call last):\n"
        'psycopg2.OperationalError: connection to server at "127.0.0.1", port 5 failed: '
        "FATAL:  remaining connection slots are reserved for non-replication superuser "
        "connections\n"
    )
    pg_log = "2026-11-21 02:58:54.794 UTC [25743] FATAL:  remaining connection slots are reserved\n"
    ev = gather_evidence("", app_log, pg_log)
    rows = failure_rows(
        Counter({"HTTP 500: expected 200, got 500": 7}),
        ev,
        KNOBS,
        server="uvicorn",
        repeat=1,
        users=50,
    )
    assert len(rows) == 1
    row = rows[0]
    assert (row.kind, row.count, row.source) == ("HTTP 500", 7, "PostgreSQL")
    assert "max_connections (20) exhausted" in row.cause
    assert "x1" in row.evidence


def test_http_500_with_another_exception_is_attributed_to_django() -> None:
    ev = gather_evidence("", "Traceback ...\nZeroDivisionError: division by zero\n", "")
    (row,) = failure_rows(Counter({"HTTP 500: x": 2}), ev, KNOBS, server="g", repeat=1, users=1)
    assert row.source == "Django" and "ZeroDivisionError: division by zero" in row.cause


def test_dropped_connections_with_nginx_alert_are_attributed_to_worker_connections() -> None:
    nginx_error = "2026/11/21 03:00:00 [alert] 12#12: 64 worker_connections are not enough\n" * 3
    ev = gather_evidence(nginx_error, "", "")
    rows = failure_rows(
        Counter({"ConnectionResetError: [Errno 104] Connection reset by peer": 5,
                 "HTTPConnectionClosed: connection closed.": 2}),
        ev, KNOBS, server="gunicorn", repeat=1, users=100,
    )  # fmt: skip
    assert {r.kind for r in rows} == {"connection reset", "connection closed"}
    for row in rows:
        assert row.source == "nginx"
        assert "worker_connections (64) are not enough" in row.cause
        assert "x3" in row.evidence


def test_gateway_errors_cite_the_upstream_evidence() -> None:
    nginx_error = "upstream prematurely closed connection while reading response header\n"
    ev = gather_evidence(nginx_error, "[CRITICAL] WORKER TIMEOUT (pid:7)\n", "")
    (row,) = failure_rows(Counter({"HTTP 502: x": 4}), ev, KNOBS, server="g", repeat=1, users=1)
    assert row.source == "app server" and "WORKER TIMEOUT" in row.cause


def test_timeouts_and_unexplained_failures_say_so() -> None:
    ev = gather_evidence("", "", "")
    rows = {
        r.kind: r
        for r in failure_rows(
            Counter({"TimeoutError: timed out": 3, "ConnectionResetError: reset": 1}),
            ev,
            KNOBS,
            server="g",
            repeat=1,
            users=1,
        )
    }
    assert rows["timeout"].source == "client" and "10 s" in rows["timeout"].cause
    assert "no nginx log evidence" in rows["connection reset"].cause
