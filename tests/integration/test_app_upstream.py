"""The sample app's waits, for real: a delayed upstream (nginx + echo module), a database sleep
and a slow-client upload, under a sync worker, gevent, and uvicorn with sync and async views.

Every process is real (PostgreSQL, the app server, the upstream nginx); the upstream's own access
log says how many calls the app made. Timing assertions are one-sided (at least the delay), so a
busy machine can only make them pass more slowly, never fail them.
"""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gatewaybench.matrix import Budget
from gatewaybench.servers import REGISTRY
from gatewaybench.spec import AppSource, DjangoSettings, PostgresSettings
from gatewaybench.stack import app, nginx, postgres, process
from gatewaybench.stack.net import LOOPBACK, free_port
from gatewaybench.stack.upstream import Upstream, find_echo_module, running_upstream
from gatewaybench.stack.verify import CHOICE_RE, COOKIE_RE, CSRF_RE
from tests.conftest import assert_nothing_left

pytestmark = pytest.mark.integration

WAIT_MS = 50
DB_WAIT_MS = 100
UPLOAD_BYTES = 64 * 1024
BUDGET = Budget(1, 2)
LOG_DEADLINE_S = 3.0  # nginx writes a line as a request ends; allow for a slow machine


@dataclass(frozen=True)
class Variant:
    server: str
    views: str
    calls: int  # GB_UPSTREAM_CALLS


VARIANTS = {
    "gunicorn": Variant("gunicorn", "sync", 1),
    "gunicorn-gevent": Variant("gunicorn-gevent", "sync", 2),
    "uvicorn+async": Variant("uvicorn", "async", 1),
    "uvicorn+sync": Variant("uvicorn", "sync", 1),
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[postgres.Cluster]:
    run_dir = tmp_path_factory.mktemp("run")
    os.chmod(run_dir, 0o755)
    with postgres.running_cluster(
        postgres.find_binaries(),
        run_dir,
        run_dir / "logs",
        free_port(),
        PostgresSettings(max_connections=40),
    ) as c:
        yield c
    assert_nothing_left(str(c.data_dir))


@pytest.fixture(scope="module")
def app_env(cluster: postgres.Cluster, tmp_path_factory: pytest.TempPathFactory) -> app.AppEnv:
    env = app.AppEnv.create(cluster.app_dsn, DjangoSettings(questions=3, choices=2), AppSource())
    app.migrate_and_seed(env, dict(os.environ), tmp_path_factory.mktemp("logs"))
    return env


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[Upstream]:
    with running_upstream(
        nginx.find_nginx(),
        find_echo_module(),
        port=free_port(),
        conf_dir=tmp_path,
        logs=tmp_path,
        name="test",
    ) as up:
        yield up


def start_app(
    server_name: str, views: str, waits: dict[str, str], app_env: app.AppEnv, logs: Path
) -> tuple[process.ManagedProcess, int]:
    server, port = REGISTRY[server_name], free_port()
    env = app_env.variables(dict(os.environ)) | {
        "GB_VIEWS": views,
        "GB_CONN_MAX_AGE": "0",
        "GB_DB_POOL_MAX": "0",
        **waits,
    }
    argv = app.server_argv(server, port, BUDGET)
    return app.start_server(server, argv, port=port, env=env, logs=logs), port


def request(
    port: int, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[float, int, dict[str, str], str]:
    """One request on a fresh connection: (seconds taken, status, headers, body)."""
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=15)
    try:
        started = time.monotonic()
        conn.request(method, path, body=body or None, headers={"Host": LOOPBACK, **(headers or {})})
        resp = conn.getresponse()
        text = resp.read().decode("utf-8", "replace")
        elapsed = time.monotonic() - started
        return elapsed, resp.status, {k.lower(): v for k, v in resp.getheaders()}, text
    finally:
        conn.close()


def sleep_calls(up: Upstream) -> int:
    """/sleep lines in the upstream's access log ($msec $status $request_time $arg_s): the last
    field is the delay asked for, "-" for requests without one (its health checks)."""
    if not up.files.access_log.exists():
        return 0
    return sum(
        1 for line in up.files.access_log.read_text().splitlines() if line.split()[-1] != "-"
    )


def calls_after(up: Upstream, expected: int) -> int:
    """The count once it reaches `expected` (or the deadline passes): the caller asserts it is
    exactly that, so an extra call shows as well as a missing one."""
    deadline = time.monotonic() + LOG_DEADLINE_S
    while (count := sleep_calls(up)) < expected and time.monotonic() < deadline:
        time.sleep(0.02)
    return count


def vote(port: int) -> tuple[float, int]:
    """GET the form (with its CSRF token and cookie), then POST a vote: (vote's seconds, status)."""
    _, status, headers, body = request(port, "GET", "/polls/1/")
    token, choices = CSRF_RE.search(body), CHOICE_RE.findall(body)
    cookie = COOKIE_RE.search(headers.get("set-cookie", ""))
    assert status == 200 and token and choices and cookie, body[:300]
    form = urllib.parse.urlencode({"csrfmiddlewaretoken": token.group(1), "choice": choices[0]})
    elapsed, status, _, _ = request(
        port,
        "POST",
        "/polls/1/vote/",
        form.encode(),
        {
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": f"csrftoken={cookie.group(1)}",
        },
    )
    return elapsed, status


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_polls_pages_wait_on_the_upstream_and_the_vote_on_the_database(
    name: str, app_env: app.AppEnv, upstream: Upstream, tmp_path: Path
) -> None:
    v = VARIANTS[name]
    waits = {
        "GB_UPSTREAM_URL": upstream.url,
        "GB_UPSTREAM_MS": str(WAIT_MS),
        "GB_UPSTREAM_CALLS": str(v.calls),
        "GB_DB_WAIT_MS": str(DB_WAIT_MS),
    }
    proc, port = start_app(v.server, v.views, waits, app_env, tmp_path)
    try:
        info = app.runtime_info(port)
        assert (info["upstream_ms"], info["upstream_calls"], info["db_wait_ms"]) == (
            WAIT_MS,
            v.calls,
            DB_WAIT_MS,
        )
        assert info["views"] == v.views
        assert info["psycopg2_green"] is (v.server == "gunicorn-gevent")
        assert sleep_calls(upstream) == 0, "/healthz and /gbinfo must not call the upstream"

        expected = 0
        for path in ("/polls/", "/polls/1/", "/polls/1/results/"):
            elapsed, status, _, body = request(port, "GET", path)
            assert status == 200, body[:300]
            assert elapsed >= v.calls * WAIT_MS / 1000, f"{path} took {elapsed:.3f} s"
            expected += v.calls
            assert calls_after(upstream, expected) == expected, path

        elapsed, status = vote(port)  # the form's GET and the POST each wait on the upstream
        assert status == 302
        assert elapsed >= (v.calls * WAIT_MS + DB_WAIT_MS) / 1000, f"vote took {elapsed:.3f} s"
        expected += 2 * v.calls
        assert calls_after(upstream, expected) == expected

        payload = b"x" * UPLOAD_BYTES
        _, status, _, body = request(port, "POST", "/polls/upload/", payload)
        assert (status, body) == (200, f"received {UPLOAD_BYTES} bytes")
        # A polls page after the upload: its calls are logged after any the upload made.
        assert request(port, "GET", "/polls/")[1] == 200
        expected += v.calls
        assert calls_after(upstream, expected) == expected, "the upload called the upstream"

        upstream.proc.stop()
        _, status, _, _ = request(port, "GET", "/polls/1/")
        assert status == 500, "a dead upstream must fail the request"
        assert request(port, "GET", "/healthz")[1] == 200  # the app itself is fine
        server_log = (tmp_path / f"{v.server}.log").read_text()
        assert "Internal Server Error: /polls/1/" in server_log and "httpx." in server_log
    finally:
        proc.stop()


@pytest.mark.parametrize(("server", "views"), [("gunicorn", "sync"), ("uvicorn", "async")])
def test_no_wait_makes_no_call(
    server: str, views: str, app_env: app.AppEnv, upstream: Upstream, tmp_path: Path
) -> None:
    waits = {"GB_UPSTREAM_URL": upstream.url, "GB_UPSTREAM_MS": "0"}
    proc, port = start_app(server, views, waits, app_env, tmp_path)
    try:
        assert request(port, "GET", "/polls/1/")[1] == 200
        info = app.runtime_info(port)
        assert (info["upstream_ms"], info["db_wait_ms"], info["psycopg2_green"]) == (0, 0, False)
    finally:
        proc.stop()
    assert sleep_calls(upstream) == 0


def test_an_upstream_error_answer_fails_the_request(
    app_env: app.AppEnv, upstream: Upstream, tmp_path: Path
) -> None:
    # /missing/sleep is the upstream's 404: any answer but 200 is a failure, never swallowed.
    waits = {"GB_UPSTREAM_URL": f"{upstream.url}/missing", "GB_UPSTREAM_MS": str(WAIT_MS)}
    proc, port = start_app("gunicorn", "sync", waits, app_env, tmp_path)
    try:
        assert request(port, "GET", "/polls/1/")[1] == 500
    finally:
        proc.stop()
    assert "UpstreamError: GET " in (tmp_path / "gunicorn.log").read_text()


@pytest.mark.parametrize(
    ("waits", "message"),
    [
        ({"GB_UPSTREAM_MS": "50"}, "GB_UPSTREAM_URL is not set"),
        ({"GB_UPSTREAM_CALLS": "0"}, "GB_UPSTREAM_CALLS must be >= 1"),
        ({"GB_DB_WAIT_MS": "soon"}, "GB_DB_WAIT_MS must be an integer"),
    ],
)
def test_invalid_waits_stop_the_app_at_start(
    waits: dict[str, str], message: str, tmp_path: Path
) -> None:
    env = {**os.environ, "GB_SECRET_KEY": "x", "GB_DB_USER": "u", "GB_DB_PASSWORD": "p", **waits}
    out = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=app.SAMPLE_APP_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert out.returncode != 0
    assert "ImproperlyConfigured" in out.stderr and message in out.stderr
