from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from gatewaybench.load.locust_runner import LOCUSTFILE, StepPlan, locust_argv
from gatewaybench.servers import REGISTRY, ServerArgs, effective_workers
from gatewaybench.spec import LoadSettings

ARGS = ServerArgs(Path("/venv/bin"), "127.0.0.1", 8123, 3)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_server_binds_loopback_on_the_given_port(name: str) -> None:
    argv = REGISTRY[name].build_argv(ARGS)
    joined = " ".join(argv)
    assert argv[0] == f"/venv/bin/{name}"
    assert "127.0.0.1" in joined and "8123" in joined
    assert "0.0.0.0" not in joined


def test_gunicorn_is_sync_with_workers_and_no_control_socket() -> None:
    argv = REGISTRY["gunicorn"].build_argv(ARGS)
    assert "gbsite.wsgi:application" in argv
    assert "--workers=3" in argv and "--worker-class=sync" in argv
    assert "--no-control-socket" in argv


def test_uvicorn_turns_lifespan_off() -> None:
    argv = REGISTRY["uvicorn"].build_argv(ARGS)
    assert "--lifespan=off" in argv and "--workers=3" in argv
    assert "gbsite.asgi:application" in argv


def test_daphne_is_single_process_and_says_so() -> None:
    daphne = REGISTRY["daphne"]
    assert not daphne.multi_process
    assert effective_workers(daphne, 4) == 1
    assert "one process" in daphne.note
    assert not any("worker" in a for a in daphne.build_argv(ARGS))


def test_hypercorn_uses_workers() -> None:
    assert "--workers=3" in REGISTRY["hypercorn"].build_argv(ARGS)


def test_interfaces() -> None:
    assert {n: s.interface for n, s in REGISTRY.items()} == {
        "gunicorn": "wsgi",
        "uvicorn": "asgi",
        "daphne": "asgi",
        "hypercorn": "asgi",
    }


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
    plan = dataclasses.replace(_plan(tmp_path), processes=2)
    argv = locust_argv(Path("/b"), LoadSettings(), plan, 5599)
    assert "--processes=2" in argv
    assert "--master-bind-host=127.0.0.1" in argv
    assert "--master-bind-port=5599" in argv
    assert "--master-host=127.0.0.1" in argv and "--master-port=5599" in argv
