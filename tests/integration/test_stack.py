"""Real PostgreSQL, real app servers, real nginx: each comes up healthy and goes away cleanly."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import psutil
import psycopg2
import pytest

from gatewaybench.errors import StackError
from gatewaybench.matrix import Budget, Cell, effective
from gatewaybench.servers import REGISTRY, ServerDef
from gatewaybench.spec import AppSource, DjangoSettings, NginxSettings, PostgresSettings
from gatewaybench.stack import app, nginx, pollsdb, postgres, process
from gatewaybench.stack.net import free_port, http_get, port_is_free
from gatewaybench.stack.verify import verify_scenario
from tests.conftest import assert_nothing_left, descendants

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[postgres.Cluster]:
    run_dir = tmp_path_factory.mktemp("run")
    os.chmod(run_dir, 0o755)
    bins = postgres.find_binaries()
    with postgres.running_cluster(
        bins, run_dir, run_dir / "logs", free_port(), PostgresSettings(max_connections=40)
    ) as c:
        yield c
    assert_nothing_left(str(c.data_dir))
    assert not c.data_dir.exists(), "the cluster's data directory must be removed"
    assert not c.socket_dir.exists()
    assert port_is_free(c.dsn.port)


@pytest.fixture(scope="module")
def app_env(cluster: postgres.Cluster, tmp_path_factory: pytest.TempPathFactory) -> app.AppEnv:
    env = app.AppEnv.create(cluster.app_dsn, DjangoSettings(questions=3, choices=2), AppSource())
    app.migrate_and_seed(env, dict(os.environ), tmp_path_factory.mktemp("logs"))
    return env


def test_postgres_runs_unprivileged_on_loopback_with_a_password(
    cluster: postgres.Cluster,
) -> None:
    assert cluster.dsn.host == "127.0.0.1"
    if os.geteuid() == 0:
        assert cluster.user is not None and cluster.user != "root"
    wrong = postgres.Dsn(cluster.dsn.host, cluster.dsn.port, cluster.dsn.user, "wrong", "polls")
    with pytest.raises(Exception, match="password authentication failed"):
        wrong.connect()
    assert oct(cluster.socket_dir.stat().st_mode & 0o777) == "0o700"


def test_seeded_data_and_vote_reset(cluster: postgres.Cluster, app_env: app.AppEnv) -> None:
    assert pollsdb.question_ids(cluster.dsn) == [1, 2, 3]
    pollsdb.reset_votes(cluster.dsn)
    assert pollsdb.total_votes(cluster.dsn) == 0


def test_fresh_copy_starts_from_the_template_even_with_a_connection_left_open(
    cluster: postgres.Cluster, app_env: app.AppEnv
) -> None:
    """The gate's per-trial database: a copy of a settled template, made anew every time."""
    template = replace(cluster.dsn, dbname="copy_template")
    postgres.create_app_database(cluster.dsn, cluster.app_dsn.user, template.dbname)
    with closing(template.connect()) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (v int); INSERT INTO t VALUES (1)")
        conn.commit()
    pollsdb.vacuum_analyze(template)
    copy = replace(cluster.dsn, dbname="copy_trial")
    postgres.fresh_copy(cluster.dsn, cluster.app_dsn.user, template.dbname, copy.dbname)
    left_open = copy.connect()  # like a server backend that outlived its client
    with left_open.cursor() as cur:
        cur.execute("UPDATE t SET v = 2")
    left_open.commit()
    postgres.fresh_copy(cluster.dsn, cluster.app_dsn.user, template.dbname, copy.dbname)
    with closing(copy.connect()) as conn, conn.cursor() as cur:
        cur.execute("SELECT v FROM t")
        assert cur.fetchall() == [(1,)]
    assert left_open.closed or _is_dead(left_open)


def test_database_names_are_quoted_not_interpreted(
    cluster: postgres.Cluster, app_env: app.AppEnv
) -> None:
    """Upper case, a dash and a quote are part of the name; a name PostgreSQL would cut short
    is refused before anything is created."""
    template, odd = "Odd-Template", 'Polls-"Trial"; DROP DATABASE polls'
    postgres.create_app_database(cluster.dsn, cluster.app_dsn.user, template)
    postgres.fresh_copy(cluster.dsn, cluster.app_dsn.user, template, odd)
    postgres.fresh_copy(cluster.dsn, cluster.app_dsn.user, template, odd)  # dropped, made anew
    with closing(replace(cluster.app_dsn, dbname=odd).connect()) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT datname, pg_get_userbyid(datdba) FROM pg_database"
            " WHERE datname = current_database()"
        )
        assert cur.fetchone() == (odd, cluster.app_dsn.user)
    assert pollsdb.question_ids(cluster.dsn) == [1, 2, 3]  # polls is still there
    with pytest.raises(StackError, match="is not 1 to 63 bytes without NUL"):
        postgres.fresh_copy(cluster.dsn, cluster.app_dsn.user, template, "x" * 64)
    with pytest.raises(StackError, match="is not 1 to 63 bytes without NUL"):
        postgres.create_app_database(cluster.dsn, cluster.app_dsn.user, "")


def _is_dead(conn: psycopg2.extensions.connection) -> bool:
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
    except psycopg2.Error:
        return True
    return False


# Each server once, with the variants spread across them so every views, db and driver choice
# is exercised for real somewhere.
CELLS = {
    "gunicorn": Cell("gunicorn"),
    "gunicorn-gthread": Cell("gunicorn-gthread", db="pool"),
    "gunicorn-gevent": Cell("gunicorn-gevent"),
    "gunicorn-uvicorn": Cell("gunicorn-uvicorn", "async"),
    "uvicorn": Cell("uvicorn", "async", "pool"),
    "daphne": Cell("daphne", db="pool"),
    "hypercorn": Cell("hypercorn", "async", "pool"),
    "granian-wsgi": Cell("granian-wsgi", db="persistent"),
    "granian-asgi": Cell("granian-asgi", "async", "pool"),
}


def test_every_server_has_a_cell_here() -> None:
    assert set(CELLS) == set(REGISTRY)


def start_cell(cell: Cell, app_env: app.AppEnv, port: int, logs: Path) -> process.ManagedProcess:
    server, budget = REGISTRY[cell.server], Budget(2, 2)
    env = app_env.variables(dict(os.environ)) | app.cell_variables(
        cell, effective(cell, budget), DjangoSettings()
    )
    return app.start_server(
        server, app.server_argv(server, port, budget), port=port, env=env, logs=logs
    )


@pytest.mark.parametrize("name", sorted(CELLS))
def test_server_behind_nginx_serves_the_scenario(
    name: str, cluster: postgres.Cluster, app_env: app.AppEnv, tmp_path: Path
) -> None:
    cell = CELLS[name]
    app_port, nginx_port = free_port(), free_port()
    proc = start_cell(cell, app_env, app_port, tmp_path)
    try:
        assert http_get(app_port, "/healthz") == (200, "ok")
        info = app.runtime_info(app_port)  # what the running app says, not what we asked
        assert (info["driver"], info["views"], info["pool"]) == (
            cell.resolved_driver,
            cell.views,
            cell.db == "pool",
        )
        assert info["conn_max_age"] == (60 if cell.db == "persistent" else 0)
        assert info["adapted_middleware"] == []
        with nginx.running_nginx(
            nginx.find_nginx(),
            NginxSettings(),
            port=nginx_port,
            upstream_port=app_port,
            conf_dir=tmp_path,
            logs=tmp_path,
            name=name,
        ):
            before = pollsdb.total_votes(cluster.dsn)
            verify_scenario(nginx_port, 1)
            assert_listeners_loopback_only()
            assert pollsdb.total_votes(cluster.dsn) == before + 1
            access_log = (tmp_path / f"nginx-{name}-access.log").read_text()
            assert '"POST /polls/1/vote/"' in access_log and " 302 " in access_log
        if not REGISTRY[name].multi_process:  # the budget's 2 processes, as instances
            assert len(psutil.Process(proc.pid).children()) == 2
    finally:
        proc.stop()
    assert port_is_free(app_port)
    assert_nothing_left(str(tmp_path), children=False)  # the module's postgres is still up


def assert_listeners_loopback_only() -> None:
    """Every listening socket of every process we started (postgres, the server and its
    workers, nginx and its workers) is bound to loopback."""
    ours = {p.pid for p in descendants()}
    listeners = [c for c in psutil.net_connections("inet")
                 if c.status == psutil.CONN_LISTEN and c.pid in ours]  # fmt: skip
    assert listeners, "expected to see our own listeners"
    exposed = [(c.pid, c.laddr) for c in listeners if c.laddr.ip not in ("127.0.0.1", "::1")]
    assert not exposed, f"listening beyond loopback: {exposed}"


def test_a_server_that_dies_at_start_is_reported_with_its_log(
    app_env: app.AppEnv, tmp_path: Path
) -> None:
    def crash(_args: object) -> list[str]:
        return [sys.executable, "-c", "import sys; print('boom: no such module'); sys.exit(3)"]

    broken = ServerDef("broken", "wsgi", ("gunicorn",), crash, "gunicorn")
    port = free_port()
    with pytest.raises(StackError) as info:
        app.start_server(
            broken,
            app.server_argv(broken, port, Budget(1)),
            port=port,
            env=app_env.variables(dict(os.environ)),
            logs=tmp_path,
        )
    assert "exited with code 3 while waiting for HTTP 200" in info.value.problem
    assert "boom: no such module" in info.value.detail


def test_readiness_deadline_names_what_was_awaited(tmp_path: Path) -> None:
    proc = process.start(
        "sleeper",
        [sys.executable, "-c", "import time; time.sleep(60)"],
        log_path=tmp_path / "sleeper.log",
    )
    try:
        with pytest.raises(StackError, match=r"sleeper: the moon not ready after 0.3 s"):
            process.wait_until(proc, "the moon", lambda: False, 0.3)
    finally:
        proc.stop(timeout_s=2)
    assert not proc.alive()


def test_stop_kills_the_whole_process_group(tmp_path: Path) -> None:
    """A server's workers (grandchildren) die with it, even if they ignore SIGTERM."""
    script = (
        "import os, signal, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', "
        "'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = process.start("parent", [sys.executable, "-c", script], log_path=tmp_path / "p.log")
    process.wait_until(proc, "child pid", lambda: bool(proc.log_tail().strip()), 10)
    child_pid = int(proc.log_tail().split()[0])
    proc.stop(timeout_s=1)
    deadline = time.monotonic() + 5
    while psutil.pid_exists(child_pid) and psutil.Process(child_pid).status() != "zombie":
        assert time.monotonic() < deadline, "the grandchild survived its group being stopped"
        time.sleep(0.05)
