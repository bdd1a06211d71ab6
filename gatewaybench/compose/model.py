"""The services of the Docker topology, as plain data: one model, two realisations.

`render.py` turns a Project into docker-compose.yml; `engine.py` turns the same Project into
Docker SDK calls for `gatewaybench run --backend compose`. Neither decides anything about a
service: commands, environment, health checks, mounts and dependencies are all decided here
(built by services.py from the spec), so the two cannot drift apart.

Secrets are never values in the model. A secret is a reference (`secret_ref`), which the compose
file writes as `${NAME:?...}` (read from the uncommitted .env) and the SDK backend replaces with
the run's own generated value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

SECRET_RE = re.compile(r"\{\{secret:([A-Z][A-Z0-9_]*)\}\}")
VAR_RE = re.compile(r"\{\{var:([A-Z][A-Z0-9_]*):([A-Za-z0-9_.,-]*)\}\}")
SECRETS = ("GB_SECRET_KEY", "GB_DB_PASSWORD", "POSTGRES_PASSWORD")

# RLIMIT_NPROC, given wherever a service sets its file limit: with any ulimit set, Podman's API
# replaces its defaults with ones above this machine kind's hard limits, and runc then refuses to
# start the container ("error setting rlimit type 6").
NPROC = 32768

# depends_on conditions, as compose names them.
HEALTHY = "service_healthy"
STARTED = "service_started"
COMPLETED = "service_completed_successfully"


def secret_ref(name: str) -> str:
    """A placeholder for a secret inside any string of the model."""
    if name not in SECRETS:
        raise ValueError(f"unknown secret {name}")
    return "{{secret:" + name + "}}"


def var_ref(name: str, default: str) -> str:
    """A setting the compose user may override from the environment (default otherwise)."""
    return "{{var:" + name + ":" + default + "}}"


def fill(text: str, secret: Callable[[str], str], var: Callable[[str, str], str]) -> str:
    """Replace every secret and variable reference in `text`."""
    text = SECRET_RE.sub(lambda m: secret(m.group(1)), text)
    return VAR_RE.sub(lambda m: var(m.group(1), m.group(2)), text)


@dataclass(frozen=True)
class Healthcheck:
    test: tuple[str, ...]  # exec form (compose: ["CMD", *test])
    interval_s: int = 5
    timeout_s: int = 3
    retries: int = 30
    start_period_s: int = 0


@dataclass(frozen=True)
class FileMount:
    """A generated file the container reads (compose: a read-only bind mount of the committed
    file; SDK backend: copied into the container before it starts, so no host path is needed)."""

    source: str  # path relative to the compose file
    container_path: str
    content: str
    mode: int = 0o644


@dataclass(frozen=True)
class VolumeMount:
    volume: str  # a named volume of the project
    container_path: str


@dataclass(frozen=True)
class Dependency:
    service: str
    condition: str
    # False: the service may be absent (another profile's app server); compose then skips it.
    required: bool = True


@dataclass(frozen=True)
class Build:
    """An image built from the repository rather than pulled (compose: `build:`)."""

    dockerfile: str  # path relative to the compose file
    context: str = "."  # the build context: only what the Dockerfile needs


@dataclass(frozen=True)
class Port:
    host_ip: str
    host_port_variable: str  # compose: ${VAR:-default}; SDK backend: a free port of its own
    default_host_port: int
    container_port: int


@dataclass(frozen=True)
class Service:
    name: str
    image: str
    command: tuple[str, ...]
    component: str  # resources.csv's: postgres, upstream, app, nginx, locust ("" for one-shots)
    build: Build | None = None  # None: a pinned image, pulled
    # compose: the image is `${VARIABLE:-image}`, so a locally built or mirrored image can stand
    # in; the SDK backend uses `image` itself.
    image_variable: str = ""
    environment: Mapping[str, str] = field(default_factory=dict)
    depends_on: tuple[Dependency, ...] = ()
    healthcheck: Healthcheck | None = None
    files: tuple[FileMount, ...] = ()
    volumes: tuple[VolumeMount, ...] = ()
    ports: tuple[Port, ...] = ()
    profiles: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()  # extra names on the project network (the app is "app")
    replicas: int = 1
    working_dir: str = ""
    user: str = ""
    stop_signal: str = ""
    nofile: int = 0  # RLIMIT_NOFILE soft and hard (with NPROC for processes); 0: engine default
    one_shot: bool = False  # runs to completion (migrate + seed)


@dataclass(frozen=True)
class Project:
    name: str
    services: tuple[Service, ...]
    volumes: tuple[str, ...]

    def service(self, name: str) -> Service:
        for s in self.services:
            if s.name == name:
                return s
        raise KeyError(name)

    def files(self) -> dict[str, str]:
        """Every generated file the services mount, by path relative to the compose file."""
        return {f.source: f.content for s in self.services for f in s.files}
