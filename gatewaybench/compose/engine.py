"""The service model realised with the Docker SDK: networks, volumes, containers, copies.

For the harness's own containers (`run --backend compose`) this does what `docker compose` would
for the same Project: one bridge network per run (with the `app` alias), named volumes,
containers with the model's command, environment, health check, ulimits and published ports,
and generated files copied in before start (no host paths). Every object carries the run's
project label, and `down()` removes them all with their volumes (`down -v`). Health checks are
triggered here on an engine that does not schedule them (Podman without systemd).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import re
import resource
import tarfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from docker.errors import DockerException
from requests import RequestException

from gatewaybench.compose.host import EngineHost, health_status, interval_s, run_healthcheck
from gatewaybench.compose.model import NPROC, Service
from gatewaybench.compose.render import environment_of, fill_values
from gatewaybench.compose.services import DOCKERFILE
from gatewaybench.errors import StackError
from gatewaybench.signals import checkpoint
from gatewaybench.stack.logs import LOG_CAP_BYTES
from gatewaybench.stack.net import LOOPBACK

LABEL = "io.gatewaybench.project"
NS = 1_000_000_000
POLL_S = 0.5
LOG_TAIL_LINES = 40
DEFAULT_NOFILE = 4096  # a service that names no limit
# What the app image's build context holds (the same list as docker/app.Dockerfile.dockerignore).
CONTEXT = ("pyproject.toml", "envs/psycopg3.txt", "docker/requirements.py", DOCKERFILE,
           "sample_app", "loadtests")  # fmt: skip


@dataclass
class Engine:
    """One run's Docker objects on `host`'s engine."""

    host: EngineHost
    project: str  # unique per run: names and labels every object
    values: Mapping[str, str]  # secrets and variables the model refers to
    # Service name -> address on the project network, as containers start. Every container gets
    # them in /etc/hosts: no DNS lookup on the measured path (the local backend has none, the app
    # connects to PostgreSQL per request, and Podman 4.3's aardvark-dns was seen to stop
    # answering mid-run).
    hosts: dict[str, str] = field(default_factory=dict)
    _once: Iterator[int] = field(default_factory=itertools.count)  # names one-shot containers

    @property
    def client(self) -> Any:
        return self.host.client

    @property
    def network_name(self) -> str:
        return f"{self.project}_default"

    def volume_name(self, volume: str) -> str:
        return f"{self.project}_{volume}"

    def create_network(self) -> None:
        self.client.networks.create(
            self.network_name, driver="bridge", labels={LABEL: self.project}
        )

    def create_volumes(self, volumes: Sequence[str]) -> None:
        for v in volumes:
            self.client.volumes.create(name=self.volume_name(v), labels={LABEL: self.project})

    def start(
        self, service: Service, *, suffix: str = "1", publish: Mapping[int, int] | None = None
    ) -> Any:
        """Create the container as the model says, copy its files in, start it. `publish` maps
        container ports to free ports on 127.0.0.1 (the model's own ports are compose's)."""
        kwargs: dict[str, Any] = {
            "command": [fill_values(a, self.values) for a in service.command],
            "name": container_name(self.project, service.name, suffix),
            "environment": environment_of(service, self.values),
            "labels": {LABEL: self.project, f"{LABEL}.service": service.name},
            "network": self.network_name,
            "networking_config": {
                self.network_name: self.client.api.create_endpoint_config(
                    aliases=[service.name, *service.aliases]
                )
            },
            "volumes": {
                self.volume_name(v.volume): {"bind": v.container_path, "mode": "rw"}
                for v in service.volumes
            },
            "ports": {f"{c}/tcp": (LOOPBACK, h) for c, h in (publish or {}).items()},
            "log_config": self._log_config(),
            "extra_hosts": dict(self.hosts),
        }
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
        kwargs["ulimits"] = _ulimits(service.nofile)
        try:
            container = self.client.containers.create(service.image, **kwargs)
            for f in service.files:
                dest = PurePosixPath(f.container_path)
                container.put_archive(str(dest.parent), file_tar(dest.name, f.content, f.mode))
            container.start()
            self.hosts[service.name] = self.address(container)
        except DockerException as exc:  # the cell fails with the engine's reason; down() sweeps
            raise StackError(
                f"{kwargs['name']} could not start: {exc}",
                "see the engine's log (logs/podman-service.log with our own Podman service)",
            ) from None
        return container

    def address(self, container: Any) -> str:
        """The container's address on the project network."""
        container.reload()
        return str(container.attrs["NetworkSettings"]["Networks"][self.network_name]["IPAddress"])

    def _log_config(self) -> dict[str, Any]:
        """Each container's log capped like the local backend's files (its driver rotates)."""
        driver = "k8s-file" if self.host.kind == "podman" else "json-file"
        return {"Type": driver, "Config": {"max-size": str(LOG_CAP_BYTES)}}

    def wait_healthy(self, container: Any, what: str, timeout_s: float) -> None:
        """Poll the health status until healthy, with a deadline, running the checks ourselves
        where the engine does not schedule them; a container that exits or turns unhealthy ends
        the wait with its log tail."""
        deadline, checked = time.monotonic() + timeout_s, -float("inf")
        while True:
            container.reload()
            state, health = container.attrs["State"], health_status(container.attrs)
            if health == "healthy":
                return
            if state.get("Status") in ("exited", "dead") or health == "unhealthy":
                raise StackError(
                    f"{what} did not become healthy (container {state.get('Status')}, "
                    f"health {health})",
                    f"see its log in the run's logs/ ({container.name})",
                    self.tail(container),
                )
            if time.monotonic() > deadline:
                raise StackError(
                    f"{what} not healthy after {timeout_s:.0f} s",
                    f"see its log in the run's logs/ ({container.name})",
                    self.tail(container),
                )
            if not self.host.schedules_healthchecks and (
                time.monotonic() - checked >= interval_s(container.attrs)
            ):
                checked = time.monotonic()
                # A check that fails to run (a slow engine, a container just exited) is retried
                # at the next interval; the deadline bounds the wait.
                with contextlib.suppress(StackError, DockerException, RequestException):
                    run_healthcheck(self.host, container.id)  # it records the result itself
            checkpoint()
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

    def run_once(self, image: str, argv: list[str], timeout_s: float = 120) -> str:
        """argv in a one-shot container of `image` (no network), its output; a StackError if it
        fails. A one-shot container, not an exec: Podman keeps an exec's conmon for minutes."""
        name = container_name(self.project, "once", str(next(self._once)))
        try:
            container = self.client.containers.create(
                image, command=argv, name=name, labels={LABEL: self.project},
                network_mode="none", log_config=self._log_config(),
            )  # fmt: skip
            container.start()
        except DockerException as exc:
            raise StackError(f"{name} could not start: {exc}") from None
        code = self.wait_exit(container, timeout_s)
        output = self.logs(container, stderr=False)
        self.remove(container)
        if code != 0:
            raise StackError(f"{' '.join(argv[:2])} in {image} exited with {code}")
        return output.strip()

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
                copied = dest / f"{prefix}{PurePosixPath(member.name).name}"
                copied.write_bytes(extracted.read())
                written.append(copied)
        return written

    def save_logs(self, container: Any, path: Path) -> None:
        """The container's whole log into `path`, then the container removed."""
        with contextlib.suppress(DockerException):
            path.write_text(self.logs(container))
        self.remove(container)

    def save_nginx_logs(self, container: Any, logs: Path, label: str) -> None:
        """Under the local backend's names: the access log is nginx's stdout, the error log its
        stderr (the images link their log files there)."""
        with contextlib.suppress(DockerException):
            (logs / f"nginx-{label}-access.log").write_text(self.logs(container, stderr=False))
            (logs / f"nginx-{label}-error.log").write_text(self.logs(container, stdout=False))
        self.remove(container)

    def remove(self, container: Any) -> None:
        with contextlib.suppress(DockerException):  # already gone: down() sweeps by label
            container.remove(force=True)

    def down(self) -> None:
        """Every container of this run, then its networks and volumes (`down -v`), found by
        the run's label (so also those made just before an interruption)."""
        labelled = {"label": f"{LABEL}={self.project}"}
        for container in self.client.containers.list(all=True, filters=labelled):
            self.remove(container)
        for network in self.client.networks.list(filters=labelled):
            network.remove()
        for volume in self.client.volumes.list(filters=labelled):
            volume.remove(force=True)


def container_name(project: str, service: str, suffix: str) -> str:
    """What engines accept in a name ([a-zA-Z0-9][a-zA-Z0-9_.-]*): a cell label's `@` and `+`
    become `-`."""
    return re.sub(r"[^a-zA-Z0-9_.-]", "-", f"{project}-{service}-{suffix}")


def _ulimits(nofile: int) -> list[dict[str, Any]]:
    """File and process limits (model.NPROC) no higher than our own hard ones: an engine without
    CAP_SYS_RESOURCE (rootful Podman here) cannot raise them, and the container would not
    start."""
    hard_files = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    hard_procs = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    files = min(nofile or DEFAULT_NOFILE, hard_files)
    procs = min(NPROC, hard_procs)
    return [
        {"Name": "nofile", "Soft": files, "Hard": files},
        {"Name": "nproc", "Soft": procs, "Hard": procs},
    ]


def file_tar(name: str, content: str, mode: int) -> bytes:
    """A one-file tar archive for put_archive (files are world-readable, root-owned).

    It ends right after the two end-of-archive blocks: tarfile pads to a 10 KiB record, and
    Podman's copier stops reading at the end marker and closes its pipe while the padding is
    still being written, failing the upload with "broken pipe" now and then
    (containers/buildah#6573)."""
    data = content.encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = mode
        info.mtime = int(time.time())
        tar.addfile(info, io.BytesIO(data))
        members_end = tar.offset
    return buf.getvalue()[: members_end + 2 * tarfile.BLOCKSIZE]


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
