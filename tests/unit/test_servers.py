from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from gatewaybench.load.locust_runner import LOCUSTFILE, StepPlan, locust_argv
from gatewaybench.matrix import Budget, Cell, effective, warnings_for
from gatewaybench.servers import REGISTRY, ServerArgs, effective_threads
from gatewaybench.spec import LoadSettings
from gatewaybench.stack import app

ARGS = ServerArgs(Path("/venv/bin"), "127.0.0.1", 8123, 3, 4)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_server_binds_loopback_on_the_given_port(name: str) -> None:
    server = REGISTRY[name]
    argv = server.build_argv(ARGS)
    joined = " ".join(argv)
    assert argv[0] == f"/venv/bin/{server.executable}"
    assert "127.0.0.1" in joined and "8123" in joined
    assert "0.0.0.0" not in joined
    expected = (
        "gbsite.wsgi:application" if server.interface == "wsgi" else "gbsite.asgi:application"
    )
    assert argv[-1] == expected


@pytest.mark.parametrize("name", sorted(n for n, s in REGISTRY.items() if s.multi_process))
def test_every_multi_process_server_gets_the_budgets_workers(name: str) -> None:
    assert "--workers=3" in REGISTRY[name].build_argv(ARGS)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_a_target_overrides_the_sample_app(name: str) -> None:
    argv = REGISTRY[name].build_argv(ServerArgs(Path("/b"), "127.0.0.1", 1, 1, app="mine.x:app"))
    assert argv[-1] == "mine.x:app"


def test_gunicorn_variants() -> None:
    sync = REGISTRY["gunicorn"].build_argv(ARGS)
    assert "--worker-class=sync" in sync and "--no-control-socket" in sync
    assert not any(a.startswith("--threads") for a in sync)
    gthread = REGISTRY["gunicorn-gthread"].build_argv(ARGS)
    assert "--worker-class=gthread" in gthread and "--threads=4" in gthread
    uv = REGISTRY["gunicorn-uvicorn"].build_argv(ARGS)
    assert "--worker-class=uvicorn_worker.UvicornWorker" in uv
    assert "uvicorn-worker" in REGISTRY["gunicorn-uvicorn"].packages


def test_gunicorn_gevent_runs_a_greenlet_per_request() -> None:
    server = REGISTRY["gunicorn-gevent"]
    argv = server.build_argv(ARGS)
    assert argv[0] == "/venv/bin/gunicorn" and server.interface == "wsgi"
    assert "--worker-class=gevent" in argv and "--worker-connections=1000" in argv
    assert "--workers=3" in argv and "--no-control-socket" in argv
    assert not any(a.startswith("--threads") for a in argv)  # the budget's threads do not apply
    assert effective_threads(server, 4) is None
    assert {"gevent", "psycogreen"} <= set(server.packages)
    assert "psycogreen" in server.note


def test_uvicorn_turns_lifespan_off() -> None:
    argv = REGISTRY["uvicorn"].build_argv(ARGS)
    assert "--lifespan=off" in argv and "--workers=3" in argv


def test_granian_interfaces_and_threads() -> None:
    wsgi = REGISTRY["granian-wsgi"].build_argv(ARGS)
    assert "--interface=wsgi" in wsgi and "--blocking-threads=4" in wsgi
    asgi = REGISTRY["granian-asgi"].build_argv(ARGS)
    assert "--interface=asginl" in asgi  # ASGI without lifespan
    assert not any(a.startswith("--blocking-threads") for a in asgi)


def test_daphne_gets_the_process_budget_as_instances_on_one_socket() -> None:
    daphne = REGISTRY["daphne"]
    assert not daphne.multi_process and "share one listening socket" in daphne.note
    argv = app.server_argv(daphne, 8123, Budget(3, 4))
    assert argv[1:3] == ["-m", "gatewaybench.stack.instances"]
    assert "--count=3" in argv and "--port=8123" in argv and "--host=127.0.0.1" in argv
    inner = argv[argv.index("--") + 1 :]
    assert inner[0].endswith("/daphne") and "--fd=3" in inner
    assert not any(a.startswith("--port") or a.startswith("--bind") for a in inner)


def test_interfaces() -> None:
    assert {n: s.interface for n, s in REGISTRY.items()} == {
        "gunicorn": "wsgi",
        "gunicorn-gthread": "wsgi",
        "gunicorn-gevent": "wsgi",
        "gunicorn-uvicorn": "asgi",
        "uvicorn": "asgi",
        "daphne": "asgi",
        "hypercorn": "asgi",
        "granian-wsgi": "wsgi",
        "granian-asgi": "asgi",
    }


@pytest.mark.parametrize(
    ("cell", "threads", "pool", "max_db"),
    [
        (Cell("gunicorn"), "1", 0, "4"),
        (Cell("gunicorn", db="persistent"), "1", 0, "4"),
        (Cell("gunicorn-gthread", db="persistent"), "3", 0, "12"),
        (Cell("granian-wsgi", db="pool"), "3", 3, "12"),
        (Cell("gunicorn-gevent"), "per request", 0, "unbounded"),
        (Cell("uvicorn"), "per request", 0, "unbounded"),
        (Cell("uvicorn", "async", "pool"), "per request", 3, "12"),
        (Cell("daphne", "async", "pool"), "per request", 3, "12"),
    ],
)
def test_effective_budget_per_cell(cell: Cell, threads: str, pool: int, max_db: str) -> None:
    eff = effective(cell, Budget(4, 3))
    assert (eff.workers, eff.threads_text, eff.pool_max, eff.db_text) == (
        4,
        threads,
        pool,
        max_db,
    )


def test_warnings_name_leaks_unbounded_and_over_limit_cells() -> None:
    leak = Cell("uvicorn", db="persistent")
    assert any("leak" in w for w in warnings_for(leak, effective(leak, Budget(2, 1)), 100))
    assert any(
        "unbounded" in w
        for w in warnings_for(Cell("uvicorn"), effective(Cell("uvicorn"), Budget(2, 1)), 100)
    )
    big = Cell("gunicorn-gthread")
    assert any("more than" in w for w in warnings_for(big, effective(big, Budget(4, 30)), 100))
    assert warnings_for(big, effective(big, Budget(2, 4)), 100) == []


def test_cell_labels_name_only_what_differs_from_the_seed() -> None:
    assert Cell("uvicorn").label == "uvicorn"
    assert Cell("uvicorn", "async", "pool").label == "uvicorn+async+pool"
    assert (
        Cell("gunicorn", db="persistent", driver="psycopg3").label == "gunicorn+persistent+psycopg3"
    )
    assert Cell("gunicorn", db="pool").resolved_driver == "psycopg3"


def test_cell_variables_give_psycopg3_only_to_its_cells() -> None:
    from gatewaybench.spec import DjangoSettings

    b = Budget(2, 4)
    pool = app.cell_variables(
        Cell("uvicorn", "async", "pool"),
        effective(Cell("uvicorn", "async", "pool"), b),
        DjangoSettings(),
    )
    assert pool["GB_DB_POOL_MAX"] == "4" and pool["GB_VIEWS"] == "async"
    assert pool["PYTHONPATH"].endswith("psycopg3") and pool["GB_CONN_MAX_AGE"] == "0"
    plain = app.cell_variables(
        Cell("gunicorn", db="persistent"), effective(Cell("gunicorn"), b), DjangoSettings()
    )
    assert (
        "PYTHONPATH" not in plain
        and plain["GB_CONN_MAX_AGE"] == "60"
        and plain["GB_DB_POOL_MAX"] == "0"
    )


def _plan(tmp_path: Path) -> StepPlan:
    return StepPlan(300, 8080, tmp_path / "rec", tmp_path / "locust", (1, 2))


def test_locust_argv_is_headless_loopback_with_drain(tmp_path: Path) -> None:
    load = LoadSettings(ramp_s=3, stop_timeout_s=12)
    argv = locust_argv(Path("/venv/bin"), load, _plan(tmp_path), 5557)
    assert argv[:2] == ["/venv/bin/locust", f"--locustfile={LOCUSTFILE}"]
    assert "--headless" in argv
    assert "--host=http://127.0.0.1:8080" in argv
    assert "--users=300" in argv and "--spawn-rate=100" in argv
    assert "--stop-timeout=12" in argv
    assert not any(a.startswith("--processes") for a in argv)


def test_locust_argv_distributed_master_binds_loopback(tmp_path: Path) -> None:
    plan = dataclasses.replace(_plan(tmp_path), gen_processes=2)
    argv = locust_argv(Path("/b"), LoadSettings(), plan, 5599)
    assert "--processes=2" in argv
    assert "--master-bind-host=127.0.0.1" in argv
    assert "--master-bind-port=5599" in argv
    assert "--master-host=127.0.0.1" in argv and "--master-port=5599" in argv
