"""The container engine a run talks to, found or started, and health checks where none run.

Order: DOCKER_HOST when set (it must answer: the user asked for it), then a Docker daemon on
/var/run/docker.sock, then Podman: our own `podman system service` on a socket in a private
temp dir, started with a containers.conf of our own (the system's files are never changed) and
stopped when the run ends. Nothing here creates /var/run/docker.sock.

Podman without systemd never runs health checks by itself (it schedules them with systemd
timers), so a container would stay `starting` forever: `HealthChecks` triggers them through
the libpod API for as long as containers are being waited on.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from docker.errors import DockerException
from requests.exceptions import RequestException

import docker
from gatewaybench.errors import StackError, UsageError
from gatewaybench.stack import process

DOCKER_SOCKET = Path("/var/run/docker.sock")
SYSTEMD_MARKER = Path("/run/systemd/system")  # exists only when systemd is the init
PING_TIMEOUT_S = 5
# Per read: an image build can stay silent that long (pip resolving, a big layer committed).
API_TIMEOUT_S = 300
SERVICE_START_S = 20.0
SERVICE_STOP_S = 15.0
LIBPOD_API = "/v4.0.0/libpod"  # podman 4.x; older paths stay served by newer versions
CHECK_SLACK_S = 10  # on top of a check's own timeout, for the HTTP round trip
DEFAULT_INTERVAL_NS = 30 * 1_000_000_000  # the engines' default health-check interval

# podman's defaults fail on these machines: its default nofile (1048576) needs CAP_SYS_RESOURCE,
# and crun refuses hybrid cgroups. runc with our caller's own hard limit works.
CONTAINERS_CONF = """\
# Written by gatewaybench for its own podman service (CONTAINERS_CONF); system files unchanged.
[containers]
default_ulimits = ["nofile={nofile}:{nofile}", "nproc=32768:32768"]
[engine]
runtime = "runc"
[network]
network_backend = "netavark"
"""


@dataclass(frozen=True)
class EngineHost:
    """An engine that answered a ping. `client` is a docker.DockerClient."""

    client: Any
    docker_host: str  # e.g. unix:///tmp/gb-engine-x1y2/podman.sock
    kind: str  # "docker" or "podman"
    own_service: bool  # True: we started it, and it stops when the run ends
    schedules_healthchecks: bool  # False: someone must trigger them (HealthChecks)
    version: str = ""  # the engine's own version (podman's, or Docker Engine's)
    # What it was found with (DOCKER_HOST, CA bundles): what image builds start from too.
    environ: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    def compose_env(self) -> dict[str, str]:
        """What a `docker compose` child needs to reach this engine. BuildKit off: it would
        pull its own image from a registry, and podman's API does not serve it."""
        return {"DOCKER_HOST": self.docker_host, "DOCKER_BUILDKIT": "0"}

    def describe(self) -> dict[str, Any]:
        """For the run's manifest."""
        return {
            "kind": self.kind,
            "version": self.version,
            "docker_host": self.docker_host,
            "own_service": self.own_service,
            "schedules_healthchecks": self.schedules_healthchecks,
        }


def engine_expected(environ: Mapping[str, str]) -> None:
    """A UsageError now, before a run creates anything, when container_engine could not
    possibly find or start an engine. Whether one answers is known only when it is asked."""
    if environ.get("DOCKER_HOST") or DOCKER_SOCKET.exists() or shutil.which("podman"):
        return
    raise _no_engine()


def _no_engine() -> UsageError:
    return UsageError(
        "no container engine answers",
        "run `make engine` (as root it installs Podman), or set DOCKER_HOST",
    )


@contextmanager
def container_engine(
    say: Callable[[str], None],
    workdir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Iterator[EngineHost]:
    """The engine for a run. `workdir`, when given, keeps our podman service's log
    (podman-service.log) after the run; otherwise it goes with the service's temp dir.
    `environ`: the run's child environment (Context.child_env)."""
    if environ is None:
        # Callers outside a run (the engine's own tests) have no CLI to hand one down.
        environ = dict(os.environ)  # environ-ok: only when no caller passed one
    if environ.get("DOCKER_HOST"):
        yield _from_env(environ)
        return
    client = _ping_socket(DOCKER_SOCKET)
    if client is not None:
        yield _host(client, f"unix://{DOCKER_SOCKET}", own_service=False, environ=environ)
        return
    if shutil.which("podman") is None:
        raise _no_engine()
    with _podman_service(say, workdir, environ) as host:
        yield host


def _from_env(environ: Mapping[str, str]) -> EngineHost:
    docker_host = environ["DOCKER_HOST"]
    try:
        client = docker.from_env(timeout=API_TIMEOUT_S, environment=dict(environ))  # type: ignore[attr-defined]  # untyped
        client.ping()
    except DockerException as exc:
        raise UsageError(
            f"DOCKER_HOST={docker_host} does not answer ({exc})",
            "start that engine, or unset DOCKER_HOST to use a local one",
        ) from None
    return _host(client, docker_host, own_service=False, environ=environ)


def _ping_socket(path: Path) -> Any | None:
    """A client for a Docker daemon on this socket, or None if none answers there."""
    if not path.exists():
        return None
    try:
        client = docker.DockerClient(base_url=f"unix://{path}", timeout=PING_TIMEOUT_S)  # type: ignore[attr-defined]
        client.ping()
    except (DockerException, OSError):
        return None
    client.api.timeout = API_TIMEOUT_S  # the ping's short timeout was for finding out only
    return client


def _host(
    client: Any, docker_host: str, *, own_service: bool, environ: Mapping[str, str]
) -> EngineHost:
    version = client.version()
    kind = engine_kind(version)
    # Docker schedules checks itself; podman only through systemd timers.
    schedules = kind == "docker" or SYSTEMD_MARKER.is_dir()
    return EngineHost(
        client, docker_host, kind, own_service, schedules, str(version.get("Version", "")),
        environ,
    )  # fmt: skip


def engine_kind(version: dict[str, Any]) -> str:
    """ "podman" when the version's components name Podman (it reports "Podman Engine")."""
    names = [str(c.get("Name", "")) for c in version.get("Components") or []]
    return "podman" if any("podman" in n.lower() for n in names) else "docker"


@contextmanager
def _podman_service(
    say: Callable[[str], None], workdir: Path | None, environ: Mapping[str, str]
) -> Iterator[EngineHost]:
    # Short and private: a unix socket path must fit in 108 bytes.
    tmp = Path(tempfile.mkdtemp(prefix="gb-engine-", dir="/tmp"))
    # podman 4.3's API keeps every uploaded image import in TMPDIR (/var/tmp/api_load.tar*,
    # 165 MB for our base image) and never deletes it: a TMPDIR of its own, removed with it.
    # /var/tmp, as podman's default: /tmp may be RAM.
    scratch = Path(tempfile.mkdtemp(prefix="gb-engine-", dir="/var/tmp"))
    try:
        conf = tmp / "containers.conf"
        conf.write_text(containers_conf())
        socket = tmp / "podman.sock"
        log = (workdir or tmp) / "podman-service.log"
        env = {**environ, "CONTAINERS_CONF": str(conf), "TMPDIR": str(scratch)}
        proc = process.start(
            "podman service",
            ["podman", "system", "service", "--time=0", f"unix://{socket}"],
            log_path=log,
            env=env,
        )
        try:
            client = _await_service(proc, socket, kept=workdir is not None)
            host = _host(client, f"unix://{socket}", own_service=True, environ=environ)
            say(f"gatewaybench: started podman's Docker API on {host.docker_host} "
                f"(pid {proc.pid}, log {log})")  # fmt: skip
            yield host
        finally:
            proc.stop(SERVICE_STOP_S)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)


def containers_conf() -> str:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return CONTAINERS_CONF.format(nofile=hard)


def _await_service(proc: process.ManagedProcess, socket: Path, *, kept: bool) -> Any:
    """The service's client once it answers; a StackError with its log tail otherwise."""
    found: list[Any] = []

    def ready() -> bool:
        client = _ping_socket(socket)
        if client is not None:
            found.append(client)
        return client is not None

    try:
        process.wait_until(proc, f"the Docker API on {socket}", ready, SERVICE_START_S)
    except StackError as exc:
        if kept:
            raise
        # Its log goes with the temp dir: the tail in the error is all there will be.
        raise StackError(
            exc.problem, "check that `podman info` works; its log:", exc.detail
        ) from None
    return found[0]


def run_healthcheck(host: EngineHost, container_id: str) -> str:
    """Run the container's health check once and return its health status afterwards
    ("starting", "healthy" or "unhealthy"; "" without a check). On Docker, which runs checks
    itself, and for a container that is not running, only reads it: the caller's wait loop
    sees the state. A container that is gone raises docker.errors.NotFound.

    Podman's API splits an exec-form check's arguments at spaces
    (["CMD", "python3", "-c", "import sys; ..."] breaks): use CMD-SHELL, or arguments
    without spaces. Not worked around here.
    """
    api = host.client.api
    attrs = api.inspect_container(container_id)
    if host.kind == "podman" and (attrs.get("State") or {}).get("Running"):
        _trigger(host, container_id, _timeout_s(attrs))
        attrs = api.inspect_container(container_id)
    return health_status(attrs)


def _trigger(host: EngineHost, container_id: str, timeout_s: float) -> bool:
    """One check through libpod (GET .../healthcheck runs it and records the result). False
    when it could not run: 404, the container is gone; 409, not running or no check defined."""
    api = host.client.api
    url = f"{api.base_url}{LIBPOD_API}/containers/{container_id}/healthcheck"
    return bool(api.get(url, timeout=timeout_s).status_code == 200)


def _timeout_s(attrs: dict[str, Any]) -> float:
    check = (attrs.get("Config") or {}).get("Healthcheck") or {}
    return float(check.get("Timeout") or DEFAULT_INTERVAL_NS) / 1e9 + CHECK_SLACK_S


def interval_s(attrs: dict[str, Any]) -> float:
    """A container's health-check interval (its retries are counted per check)."""
    check = (attrs.get("Config") or {}).get("Healthcheck") or {}
    return float(check.get("Interval") or DEFAULT_INTERVAL_NS) / 1e9


def health_status(attrs: dict[str, Any]) -> str:
    state = attrs.get("State") or {}
    # podman's inspect says "Healthcheck" in some versions, Docker's "Health".
    health = state.get("Health") or state.get("Healthcheck") or {}
    return str(health.get("Status", ""))


@dataclass
class HealthChecks:
    """Triggers the health checks of running containers matching `label_filter`
    ("io.gatewaybench.project=NAME", "com.docker.compose.project=NAME") while they are
    `starting` or `unhealthy`, on engines that do not schedule them; a no-op elsewhere.

    Each container is checked at most once per its own configured interval (first at once),
    so a check's retries keep the time budget its definition gives them. Use as a context
    manager, and leave it before removing the containers: a check running into a removal can
    leave a stray `conmon` behind.
    """

    host: EngineHost
    label_filter: str
    interval_s: float = 1.0
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)
    _last: dict[str, float] = field(default_factory=dict, init=False)

    def start(self) -> HealthChecks:
        if not self.host.schedules_healthchecks and self._thread is None:
            self._stop.clear()  # a stopped instance may start again
            self._thread = threading.Thread(
                target=self._loop, name="gatewaybench-healthchecks", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> HealthChecks:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _loop(self) -> None:
        while not self._stop.is_set():
            # A thread must not die on a hiccup (the engine restarting a container, a
            # container removed between list and check): the next round retries.
            with contextlib.suppress(DockerException, RequestException):
                self._round()
            self._stop.wait(self.interval_s)

    def _round(self) -> None:
        api = self.host.client.api
        for summary in api.containers(filters={"label": self.label_filter}):
            if self._stop.is_set():
                return
            with contextlib.suppress(DockerException, RequestException):
                self._maybe_check(api.inspect_container(summary["Id"]))

    def _maybe_check(self, attrs: dict[str, Any]) -> None:
        if health_status(attrs) not in ("starting", "unhealthy"):
            return
        if not (attrs.get("State") or {}).get("Running"):
            return
        cid = str(attrs["Id"])
        now = time.monotonic()
        if now - self._last.get(cid, -1e9) < interval_s(attrs):
            return
        self._last[cid] = now
        _trigger(self.host, cid, _timeout_s(attrs))
