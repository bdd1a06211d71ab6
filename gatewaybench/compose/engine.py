"""The service model realised with the Docker SDK: networks, volumes, containers, copies.

The docker SDK has no compose, so this does what `docker compose` would for the same Project:
one bridge network per run (with the `app` alias), named volumes, containers with the model's
command, environment, health check, ulimits and published port, and generated files copied in
before start (no host paths: it works against any engine the SDK reaches). Every object carries
the run's project label, and `down()` removes them all with their volumes (`down -v`).
"""

from __future__ import annotations

import contextlib
import io
import json
import tarfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from docker.errors import DockerException

from gatewaybench.compose.model import Service
from gatewaybench.compose.render import environment_of, fill_values
from gatewaybench.compose.services import APP_IMAGE, DOCKERFILE
from gatewaybench.errors import StackError

LABEL = "io.gatewaybench.project"
NS = 1_000_000_000
POLL_S = 0.5
LOG_TAIL_LINES = 40
# What the app image's build context holds (the same list as docker/app.Dockerfile.dockerignore).
CONTEXT = ("pyproject.toml", "envs/psycopg3.txt", "docker/requirements.py", DOCKERFILE,
           "sample_app", "loadtests")  # fmt: skip


@dataclass
class Engine:
    """One run's Docker objects. `client` is docker.DockerClient (or a stand-in in tests)."""

    client: Any
    project: str  # unique per run: names and labels every object
    values: Mapping[str, str]  # secrets and variables the model refers to
    containers: list[Any] = field(default_factory=list)
    _network: Any = None
    _volumes: list[Any] = field(default_factory=list)

    @property
    def network_name(self) -> str:
        return f"{self.project}_default"

    def volume_name(self, volume: str) -> str:
        return f"{self.project}_{volume}"

    def prepare_images(self, services: Sequence[Service], root: Path) -> None:
        """Pull the pinned official images; build the app image from the repository."""
        for image in sorted({s.image for s in services if not s.build}):
            repo, _, tag = image.partition(":")
            self.client.images.pull(repo, tag=tag)
        self.client.images.build(
            fileobj=build_context(root),
            custom_context=True,
            dockerfile=DOCKERFILE,
            tag=APP_IMAGE,
            rm=True,
            labels={LABEL: "image"},
        )

    def create_network(self) -> None:
        self._network = self.client.networks.create(
            self.network_name, driver="bridge", labels={LABEL: self.project}
        )

    def create_volumes(self, volumes: Sequence[str]) -> None:
        for v in volumes:
            self._volumes.append(
                self.client.volumes.create(name=self.volume_name(v), labels={LABEL: self.project})
            )

    def start(
        self, service: Service, *, suffix: str = "1", host_ports: Mapping[int, int] | None = None
    ) -> Any:
        """Create the container as the model says, copy its files in, start it."""
        kwargs: dict[str, Any] = {
            "command": [fill_values(a, self.values) for a in service.command],
            "name": f"{self.project}-{service.name}-{suffix}",
            "environment": environment_of(service, self.values),
            "labels": {LABEL: self.project, f"{LABEL}.service": service.name},
            "network": self.network_name,
            "networking_config": {
                self.network_name: self.client.api.create_endpoint_config(
                    aliases=[service.name, *service.aliases]
                )
            },
            "volumes": {
                self.volume_name(v.volume): {"bind": v.target, "mode": "rw"}
                for v in service.volumes
            },
            "ports": {f"{p.container_port}/tcp": (p.host_ip, (host_ports or {})[p.container_port])
                      for p in service.ports},
        }  # fmt: skip
        if service.healthcheck:
            h = service.healthcheck
            kwargs["healthcheck"] = {
                "test": ["CMD", *h.test],
                "interval": h.interval_s * NS,
                "timeout": h.timeout_s * NS,
                "retries": h.retries,
                "start_period": h.start_period_s * NS,
            }
        for key, value in (("working_dir", service.working_dir), ("user", service.user),
                           ("stop_signal", service.stop_signal)):  # fmt: skip
            if value:
                kwargs[key] = value
        if service.nofile:
            kwargs["ulimits"] = [{"Name": "nofile", "Soft": service.nofile, "Hard": service.nofile}]
        container = self.client.containers.create(service.image, **kwargs)
        self.containers.append(container)
        for f in service.files:
            target = PurePosixPath(f.target)
            container.put_archive(str(target.parent), file_tar(target.name, f.content, f.mode))
        container.start()
        return container

    def wait_healthy(self, container: Any, what: str, timeout_s: float) -> None:
        """Poll the engine's health status until healthy, with a deadline; a container that
        exits or turns unhealthy ends the wait with its log tail."""
        deadline = time.monotonic() + timeout_s
        while True:
            container.reload()
            state = container.attrs["State"]
            health = state.get("Health", {}).get("Status")
            if health == "healthy":
                return
            if state.get("Status") in ("exited", "dead") or health == "unhealthy":
                raise StackError(
                    f"{what} did not become healthy (container {state.get('Status')}, "
                    f"health {health})",
                    f"see docker logs {container.name}",
                    self.tail(container),
                )
            if time.monotonic() > deadline:
                raise StackError(
                    f"{what} not healthy after {timeout_s:.0f} s",
                    f"see docker logs {container.name}",
                    self.tail(container),
                )
            time.sleep(POLL_S)

    def wait_exit(self, container: Any, timeout_s: float) -> int | None:
        """The container's exit code; None if it had to be stopped after `timeout_s`."""
        try:
            result = container.wait(timeout=timeout_s)
        except (DockerException, OSError):  # requests' timeouts are OSErrors
            container.stop(timeout=10)
            return None
        return int(result.get("StatusCode", -1))

    def alive(self, container: Any) -> bool:
        container.reload()
        return bool(container.attrs["State"].get("Running"))

    def run_sql(self, container: Any, user: str, database: str, sql: str) -> str:
        """psql inside the postgres container (over its socket, as the postgres user)."""
        code, output = container.exec_run(
            ["psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-U", user, "-d", database,
             "-c", sql], user="postgres",
        )  # fmt: skip
        text = output.decode("utf-8", "replace") if isinstance(output, bytes) else str(output)
        if code != 0:
            raise StackError(f"psql failed in {container.name}: {sql}", detail=text)
        return text.strip()

    def exec_text(self, container: Any, argv: list[str]) -> str:
        code, output = container.exec_run(argv)
        text = output.decode("utf-8", "replace") if isinstance(output, bytes) else str(output)
        return text.strip() if code == 0 else ""

    def logs(
        self, container: Any, *, since: float | None = None, until: float | None = None,
        stdout: bool = True, stderr: bool = True,
    ) -> str:  # fmt: skip
        kwargs: dict[str, Any] = {"stdout": stdout, "stderr": stderr}
        if since is not None:
            kwargs["since"] = since
        if until is not None:
            kwargs["until"] = until
        data = container.logs(**kwargs)
        return data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)

    def tail(self, container: Any) -> str:
        try:
            lines = self.logs(container).splitlines()
        except DockerException:
            return ""
        return "\n".join(lines[-LOG_TAIL_LINES:])

    def copy_out(self, container: Any, path: str, dest: Path, prefix: str = "") -> list[Path]:
        """Regular files under `path` in the container into `dest` (flat), names prefixed."""
        stream, _stat = container.get_archive(path)
        buf = io.BytesIO(b"".join(stream))
        written = []
        with tarfile.open(fileobj=buf) as tar:
            for member in tar.getmembers():
                if not member.isfile():
                    continue
                extracted = tar.extractfile(member)
                if extracted is None:
                    continue
                target = dest / f"{prefix}{PurePosixPath(member.name).name}"
                target.write_bytes(extracted.read())
                written.append(target)
        return written

    def remove(self, container: Any) -> None:
        with contextlib.suppress(DockerException):  # already gone: down() sweeps by label
            container.remove(force=True)
        if container in self.containers:
            self.containers.remove(container)

    def down(self) -> None:
        """Every container of this run, then its network and volumes (`down -v`)."""
        for container in self.client.containers.list(
            all=True, filters={"label": f"{LABEL}={self.project}"}
        ):
            self.remove(container)
        if self._network is not None:
            self._network.remove()
            self._network = None
        for volume in self._volumes:
            volume.remove(force=True)
        self._volumes.clear()


def file_tar(name: str, content: str, mode: int) -> bytes:
    """A one-file tar archive for put_archive (files are world-readable, root-owned)."""
    data = content.encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = mode
        info.mtime = int(time.time())
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def build_context(root: Path) -> io.BytesIO:
    """The app image's build context: only what the Dockerfile copies (no .venv, no reports)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for rel in CONTEXT:
            tar.add(root / rel, arcname=rel, filter=_no_caches)
    buf.seek(0)
    return buf


def _no_caches(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    parts = PurePosixPath(info.name).parts
    return None if "__pycache__" in parts or info.name.endswith(".pyc") else info


def versions_script(packages: Sequence[str]) -> list[str]:
    """argv printing the app image's Python and package versions as JSON."""
    code = (
        "import importlib.metadata as m, json, platform\n"
        f"names = {json.dumps(list(packages))}\n"
        "out = {'python': platform.python_version()}\n"
        "for n in names:\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: out[n] = 'not installed'\n"
        "print(json.dumps(out))\n"
    )
    return ["/opt/venv/bin/python", "-c", code]
