"""Waiting, for real: the delayed upstream nginx, the blocking bound, slow clients.

Small delays keep it short; every condition is made certain by physics, not by a quiet machine:
a one-worker sync cell *cannot* exceed 1/d requests/s, an event loop serving 60 users easily
does, and a single sync worker reading 2-second uploads itself cannot serve anyone meanwhile.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness import run_bench

pytestmark = pytest.mark.e2e

SHORT = ["--ramp", "1", "--warmup", "1", "--workers", "1", "--threads", "4"]


def test_a_blocking_cell_keeps_its_bound_and_an_event_loop_goes_beyond(tmp_path: Path) -> None:
    # 2 calls x 25 ms: every request waits 50 ms upstream, so one sync worker serves <= 20/s
    # (with its own CPU time, nearer 18/s: a 4 s window could only read more than the 5 %
    # tolerance if the generator's clock squeezed the window's completions by over 0.6 s).
    run = run_bench(
        tmp_path, *SHORT,
        "--cells", "gunicorn,uvicorn+async+pool",
        "--upstream-ms", "25", "--upstream-calls", "2",
        "--users", "20,60", "--window", "4",
    )  # fmt: skip
    # the matrix order: cell by cell, each cell's steps in ascending users on its own stack
    assert [(r["server"], int(r["users"])) for r in run.rows] == [
        (s, u) for s in ("gunicorn@25ms", "uvicorn+async+pool@25ms") for u in (20, 60)
    ]
    by = {(r["server"], int(r["users"])): r for r in run.rows}
    for (server, _users), row in by.items():
        assert row["status"] == "ok", row
        assert row["variant"] == server.split("@")[0] and row["upstream_ms"] == "25"
        # the upstream's own log: over the whole step, two calls per polls request the app
        # answered (every request has finished by then: no window edge to blur the count)
        assert int(row["upstream_requests"]) >= 2 * int(row["nginx_requests"]) > 0, row
        assert "calls vs" not in row["upstream_check"], row["upstream_check"]
    for users in (20, 60):
        sync = by[("gunicorn@25ms", users)]
        assert float(sync["wait_bound_rps"]) == pytest.approx(20.0)
        assert float(sync["ok_rps"]) <= 20.0 * 1.05, sync
        assert "blocking bound" not in sync["invalid_reason"], sync
    loop = by[("uvicorn+async+pool@25ms", 60)]
    assert loop["wait_bound_rps"] == ""  # an event loop has no such bound
    assert float(loop["ok_rps"]) > 1.05 * 20.0, loop
    assert "bound 20.0 req/s" in run.stderr and "upstream" in run.stderr  # on every step's line
    assert (run.run_dir / "conf" / "upstream-gunicorn@25ms.conf").is_file()
    assert (run.run_dir / "logs" / "upstream-gunicorn@25ms-access.log").stat().st_size > 0


def test_slow_uploads_hurt_a_sync_servers_voters_more_without_buffering(tmp_path: Path) -> None:
    # 2 of 10 users upload 32 KB at 16 KB/s (2 s each). Unbuffered, the one sync worker reads
    # each upload itself: the voters queue behind them. Buffered, nginx reads them first.
    run = run_bench(
        tmp_path, *SHORT,
        "--cells", "gunicorn", "--request-buffering", "on,off",
        "--slow-upload-pct", "20", "--slow-upload-kb", "32", "--slow-upload-kbps", "16",
        "--users", "10", "--window", "8",
    )  # fmt: skip
    by = {r["server"]: r for r in run.rows}
    assert set(by) == {"gunicorn", "gunicorn+unbuffered"}
    buffered, unbuffered = by["gunicorn"], by["gunicorn+unbuffered"]
    for row in (buffered, unbuffered):
        assert row["status"] == "ok" and int(row["uploads"]) > 0, row
        assert float(row["upload_p50_ms"]) >= 2000, row  # the trickle itself takes 2 s
    assert float(unbuffered["p95_ms"]) > 2 * float(buffered["p95_ms"]), (buffered, unbuffered)
    assert float(unbuffered["p95_ms"]) > 500, unbuffered
