"""The container engine and the images, for real: our own podman service comes and goes with the
context, health checks run only when triggered, and the images built from the apt mirror do what
the compose topology needs (PostgreSQL initialised like the official image, nginx with echo).

The first run builds every image (about 3 minutes here); later runs reuse them.
Every container, network and volume carries this module's label and is removed at the end.
"""

from __future__ import annotations

import contextlib
import os
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import psutil
import psycopg2
import pytest

from gatewaybench.compose import host as engine_host
from gatewaybench.compose.engine import file_tar
from gatewaybench.compose.host import (
    EngineHost,
    HealthChecks,
    container_engine,
    run_healthcheck,
)
from gatewaybench.compose.images import LOCAL_APT, ImageSet, prepare_images
from gatewaybench.compose.services import PG_READY, UPSTREAM_PORT, upstream_config
from gatewaybench.stack import postgres
from gatewaybench.stack.net import LOOPBACK, free_port
from tests.conftest import REPO, assert_nothing_left

pytestmark = pytest.mark.integration

LABEL = "io.gatewaybench.project"
PROJECT = f"test-engine-host-{os.getpid()}"
NS = 1_000_000_000
STAYS_STARTING_S = 3.0  # three intervals of 1 s: an engine that schedules checks ran them
HEALTHY_WITHIN_S = 8.0
PG_READY_WITHIN_S = 90.0
SECOND_PREPARE_S = 5.0


def _lines(collected: list[str]) -> Callable[[str], None]:
    return collected.append


@pytest.fixture(scope="module")
def host() -> Iterator[EngineHost]:
    with container_engine(print) as h:
        try:
            yield h
        finally:
            _remove_labelled(h)


@pytest.fixture(scope="module")
def images(host: EngineHost) -> ImageSet:
    return prepare_images(host, REPO, print)  # the first run builds; later ones reuse


def _remove_labelled(h: EngineHost) -> None:
    selector = {"label": f"{LABEL}={PROJECT}"}
    for container in h.client.containers.list(all=True, filters=selector):
        with contextlib.suppress(Exception):
            container.remove(force=True, v=True)
    for network in h.client.networks.list(filters=selector):
        with contextlib.suppress(Exception):
            network.remove()
    for volume in h.client.volumes.list(filters=selector):
        with contextlib.suppress(Exception):
            volume.remove(force=True)


def _run(h: EngineHost, image: str, command: list[str], **kwargs: Any) -> Any:
    labels = {LABEL: PROJECT, **kwargs.pop("labels", {})}
    return h.client.containers.run(image, command, detach=True, labels=labels, **kwargs)


def _health(container: Any) -> str:
    container.reload()
    return str(container.attrs["State"].get("Health", {}).get("Status", ""))


def _wait_for(what: str, done: Callable[[], bool], timeout_s: float, container: Any) -> float:
    start = time.monotonic()
    while not done():
        if time.monotonic() - start > timeout_s:
            logs = container.logs().decode(errors="replace")[-3000:]
            pytest.fail(f"{what} not within {timeout_s:g} s; container log:\n{logs}")
        time.sleep(0.2)
    return time.monotonic() - start


# The engine.


def test_own_podman_service_lives_as_long_as_the_context(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    if engine_host.DOCKER_SOCKET.exists():
        pytest.skip("a Docker daemon's socket is here: container_engine would use it")
    said: list[str] = []
    with container_engine(_lines(said)) as h:
        assert h.own_service and h.kind == "podman"
        socket = Path(h.docker_host.removeprefix("unix://"))
        assert socket.parent.name.startswith("gb-engine-") and len(str(socket)) < 108
        assert h.client.ping()
        (service,) = [p for p in psutil.process_iter(["cmdline"])
                      if str(socket) in " ".join(p.info["cmdline"] or [])]  # fmt: skip
        scratch = Path(service.environ()["TMPDIR"])  # podman's uploads land there
        assert scratch.is_dir() and scratch != Path("/var/tmp")
        env = h.compose_env()
        assert env["DOCKER_HOST"] == h.docker_host and env["DOCKER_BUILDKIT"] == "0"
        assert h.describe()["kind"] == "podman" and h.version
    assert not psutil.pid_exists(service.pid) or service.status() == psutil.STATUS_ZOMBIE
    assert not socket.parent.exists() and not scratch.exists()
    assert_nothing_left(str(socket.parent), children=False)
    assert len(said) == 1 and h.docker_host in said[0]


# Health checks.


def test_health_checks_run_only_when_triggered(host: EngineHost, images: ImageSet) -> None:
    if host.schedules_healthchecks:
        pytest.skip(f"{host.kind} schedules health checks itself here")
    check = {"test": ["CMD-SHELL", "test -e /tmp/ready && true"], "interval": NS,
             "timeout": 3 * NS, "retries": 3}  # fmt: skip
    command = ["sh", "-c", "touch /tmp/ready && exec sleep 600"]
    single = _run(host, images.nginx.name, command, healthcheck=check)
    triggered = _run(host, images.nginx.name, command, healthcheck=check,
                     labels={f"{LABEL}.role": "triggered"})  # fmt: skip
    time.sleep(STAYS_STARTING_S)
    # Passing checks, three intervals: an engine that scheduled them would say healthy.
    assert (_health(single), _health(triggered)) == ("starting", "starting")
    assert run_healthcheck(host, single.id) == "healthy"
    assert _health(triggered) == "starting"
    with HealthChecks(host, f"{LABEL}.role=triggered", interval_s=0.5):
        took = _wait_for(
            "healthy", lambda: _health(triggered) == "healthy", HEALTHY_WITHIN_S, triggered
        )
    assert took < HEALTHY_WITHIN_S
    single.remove(force=True)
    triggered.remove(force=True)


def test_health_checks_stop_cleanly_with_nothing_to_check(host: EngineHost) -> None:
    checks = HealthChecks(host, f"{LABEL}=nothing-has-this-{os.getpid()}", 0.1).start()
    time.sleep(0.3)
    checks.stop()
    assert checks._thread is None


# Images.


def test_prepared_images_exist_and_are_reused(host: EngineHost, images: ImageSet) -> None:
    for variable, image in images.by_variable().items():
        assert host.client.images.get(image.name).id == image.id, variable
    assert set(images.variables()) == {
        "GB_POSTGRES_IMAGE", "GB_NGINX_IMAGE", "GB_UPSTREAM_IMAGE", "GB_APP_IMAGE"
    }  # fmt: skip
    said: list[str] = []
    start = time.monotonic()
    again = prepare_images(host, REPO, _lines(said))
    took = time.monotonic() - start
    assert again.variables() == images.variables()
    assert not [s for s in said if s.startswith(("gatewaybench: built", "gatewaybench: pulled"))]
    assert took < SECOND_PREPARE_S
    assert all(i.built_s is None for i in again.by_variable().values())


def test_local_postgres_initialises_like_the_official_image(
    host: EngineHost, images: ImageSet
) -> None:
    if images.postgres.source != LOCAL_APT:
        pytest.skip(f"the official PostgreSQL image is in use ({images.postgres.name})")
    port, passwords = free_port(), {"super": "s3cret-super", "app": "s3cret-app"}
    # A fresh named volume is root's, as in docker-compose.yml: the entrypoint must take it.
    volume = host.client.volumes.create(f"{PROJECT}-pgdata", labels={LABEL: PROJECT})
    container = _run(
        host,
        images.postgres.name,
        ["postgres", "-c", "listen_addresses=*"],
        environment={
            "POSTGRES_USER": postgres.SUPERUSER,
            "POSTGRES_PASSWORD": passwords["super"],
            "POSTGRES_INITDB_ARGS": "-E UTF8 --locale=C",
            "GB_DB_NAME": postgres.DB_NAME,
            "GB_DB_USER": postgres.APP_ROLE,
            "GB_DB_PASSWORD": passwords["app"],
        },
        volumes={str(REPO / "docker/postgres-init.sh"):
                 {"bind": "/docker-entrypoint-initdb.d/10-gatewaybench.sh", "mode": "ro"},
                 volume.name: {"bind": "/var/lib/postgresql/data", "mode": "rw"}},
        ports={"5432/tcp": (LOOPBACK, port)},
        healthcheck={"test": ["CMD", *PG_READY], "interval": NS, "timeout": 5 * NS,
                     "retries": 90},
    )  # fmt: skip
    with HealthChecks(host, f"{LABEL}={PROJECT}"):
        _wait_for("healthy", lambda: _health(container) == "healthy", PG_READY_WITHIN_S, container)

    def login(user: str, password: str, database: str) -> str:
        conn = psycopg2.connect(host=LOOPBACK, port=port, user=user, password=password,
                                dbname=database, connect_timeout=5)  # fmt: skip
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT current_user, current_database()")
                return "/".join(cur.fetchone() or ())
        finally:
            conn.close()

    # Over the network: the password is checked (scram), not trusted.
    assert login(postgres.APP_ROLE, passwords["app"], postgres.DB_NAME) == "polls/polls"
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        login(postgres.APP_ROLE, "wrong", postgres.DB_NAME)
    # SIGINT (the image's stop signal) reaches the server itself: a fast, clean shutdown.
    start = time.monotonic()
    container.stop(timeout=30)
    assert time.monotonic() - start < 10
    assert container.wait(timeout=10)["StatusCode"] == 0
    assert "database system is shut down" in container.logs().decode(errors="replace")
    container.remove(v=True)
    volume.remove(force=True)


def test_local_nginx_serves_the_delayed_upstream(host: EngineHost, images: ImageSet) -> None:
    if images.upstream.source != LOCAL_APT:
        pytest.skip("the upstream image is built from docker/upstream.Dockerfile here")
    port = free_port()
    container = host.client.containers.create(
        images.upstream.name,
        ["nginx", "-c", "/etc/nginx/nginx.conf"],
        labels={LABEL: PROJECT},
        ports={f"{UPSTREAM_PORT}/tcp": (LOOPBACK, port)},
    )
    conf = PurePosixPath("/etc/nginx/nginx.conf")
    container.put_archive(str(conf.parent), file_tar(conf.name, upstream_config(), 0o644))
    container.start()

    def get(path: str) -> bytes:
        with urllib.request.urlopen(f"http://{LOOPBACK}:{port}{path}", timeout=5) as response:
            body: bytes = response.read()
            return body

    def answers() -> bool:
        try:
            return get("/healthz").strip() == b"ok"
        except OSError:
            return False

    _wait_for("GET /healthz", answers, HEALTHY_WITHIN_S, container)
    start = time.monotonic()
    assert get("/sleep?s=0.3").strip() == b"ok"
    assert time.monotonic() - start >= 0.3
    time.sleep(0.2)  # the access line is written as the request ends
    assert " 200 " in container.logs(stderr=False).decode(errors="replace")
    container.remove(force=True)
