"""The images a run needs, with or without an image registry.

The pinned official images (gatewaybench/compose/services.py) are used when present or
pullable. Where one is not, its local equivalent is built from the apt mirror
(docker/local/*.Dockerfile) on a Debian 12 base made with mmdebstrap: no registry needed. The
app image is built from docker/app.Dockerfile on whichever Python base there is.

Every image built here is cached by tag and carries a label with a hash of its inputs
(Dockerfile, build context, build arguments, base image id): it is reused while they are the
same and rebuilt when one changes. The app image's tag is that hash itself.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from docker.errors import DockerException, ImageNotFound

from gatewaybench.compose.engine import build_context
from gatewaybench.compose.host import EngineHost
from gatewaybench.compose.model import Service
from gatewaybench.compose.services import (
    APP_IMAGE,
    DEBIAN_IMAGE,
    DOCKERFILE,
    NGINX_IMAGE,
    POSTGRES_IMAGE,
    PYTHON_IMAGE,
    UPSTREAM_DOCKERFILE,
    UPSTREAM_IMAGE,
)
from gatewaybench.errors import StackError, UsageError
from gatewaybench.stack import process

PROJECT_LABEL = "io.gatewaybench.project"  # the value "image" marks what the harness built
INPUTS_LABEL = "io.gatewaybench.inputs"

LOCAL_DIR = "docker/local"
BASE_TAG = "localhost/gatewaybench-base:bookworm"
LOCAL_POSTGRES = "localhost/gatewaybench-postgres:15"
LOCAL_NGINX = "localhost/gatewaybench-nginx:bookworm"
LOCAL_PYTHON = "localhost/gatewaybench-python:3.11"
APP_REPOSITORY = "gatewaybench-app"
SUITE = "bookworm"  # the local images' Dockerfiles install Debian 12's packages
APT_SOURCES = (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list"))
HOST_CA_CANDIDATES = ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")
HOST_CA_DEFAULT = Path("/etc/ssl/certs/ca-certificates.crt")
MMDEBSTRAP_TIMEOUT_S = 600
LOG_TAIL_LINES = 30
OFFICIAL_IMAGES = (POSTGRES_IMAGE, NGINX_IMAGE, PYTHON_IMAGE, DEBIAN_IMAGE)
# The model's image names, for services that name no compose variable.
DEFAULT_VARIABLES = {
    POSTGRES_IMAGE: "GB_POSTGRES_IMAGE",
    NGINX_IMAGE: "GB_NGINX_IMAGE",
    UPSTREAM_IMAGE: "GB_UPSTREAM_IMAGE",
    APP_IMAGE: "GB_APP_IMAGE",
}

OFFICIAL_PULLED = "official, pulled"
OFFICIAL_PRESENT = "official, present"
LOCAL_APT = "built locally from the apt mirror"
FROM_APP_DOCKERFILE = f"built from {DOCKERFILE}"
FROM_UPSTREAM_DOCKERFILE = f"built from {UPSTREAM_DOCKERFILE}"

Say = Callable[[str], None]
T = TypeVar("T")


@dataclass(frozen=True)
class Image:
    name: str  # what a container or compose file names
    id: str
    source: str  # one of the constants above
    built_s: float | None = None  # seconds taken, when this call built (or pulled) it


@dataclass(frozen=True)
class ImageSet:
    """The images of one run, by the compose file's variables."""

    postgres: Image
    nginx: Image
    upstream: Image
    app: Image

    def by_variable(self) -> dict[str, Image]:
        return {
            "GB_POSTGRES_IMAGE": self.postgres,
            "GB_NGINX_IMAGE": self.nginx,
            "GB_UPSTREAM_IMAGE": self.upstream,
            "GB_APP_IMAGE": self.app,
        }

    def variables(self) -> dict[str, str]:
        return {var: image.name for var, image in self.by_variable().items()}

    def to_json(self) -> dict[str, Any]:
        return {var: asdict(image) for var, image in self.by_variable().items()}

    def apply(self, service: Service) -> Service:
        """The service with this run's image: by its compose variable, or else by the image
        the model names (the official or the harness's default tag)."""
        images = self.by_variable()
        variable = service.image_variable or DEFAULT_VARIABLES.get(service.image, "")
        if variable not in images:
            return service
        return replace(service, image=images[variable].name)


def prepare_images(host: EngineHost, root: Path, say: Say) -> ImageSet:
    """Official images where there are any, local equivalents where not; the app image.

    The servers' images and the app's chain (its Python base, then the app) build side by
    side: each mostly waits on a download, and together they take about as long as the app
    alone. The base comes first, alone: mmdebstrap is a child process, started before any
    thread runs (gatewaybench/stack/process.py).
    """
    images = _Images(host.client, root, say, host.environ)
    official = images.find_official()
    if None in official.values():
        images.base()
    servers = _in_background(lambda: _server_images(images, official))
    python = official[PYTHON_IMAGE] or images.local_python()
    app = images.app(python)
    postgres, nginx, upstream = servers()
    return ImageSet(postgres, nginx, upstream, app)


def _server_images(images: _Images, official: Mapping[str, Image | None]) -> tuple[Image, ...]:
    postgres = official[POSTGRES_IMAGE] or images.local_postgres()
    nginx = official[NGINX_IMAGE] or images.local_nginx()
    debian = official[DEBIAN_IMAGE]
    # The official nginx has no echo module: the upstream is Debian's nginx either way.
    upstream = images.upstream(debian) if debian else images.local_nginx()
    return postgres, nginx, upstream


def _in_background(work: Callable[[], T]) -> Callable[[], T]:
    """Start `work` in a daemon thread; the returned function waits for its result and raises
    its exception. A daemon: an interrupted run does not wait for a build it abandons (the
    build ends with the engine, or finishes into the cache)."""
    result: list[T] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            result.append(work())
        except BaseException as exc:  # handed to the waiting thread, which raises it
            error.append(exc)

    thread = threading.Thread(target=run, name="gatewaybench-images", daemon=True)
    thread.start()

    def wait() -> T:
        thread.join()
        if error:
            raise error[0]
        return result[0]

    return wait


@dataclass
class _Images:
    client: Any  # docker.DockerClient
    root: Path
    say: Say
    environ: Mapping[str, str]  # what the engine was found with (EngineHost.environ)
    official: dict[str, Image | None] = field(default_factory=dict)
    _done: dict[str, Image] = field(default_factory=dict)  # built or checked by this call

    # Official images.

    def find_official(self) -> dict[str, Image | None]:
        """Each official image if present or pullable, else None; one line for all that are
        not (each pull fails within milliseconds where no registry answers)."""
        failed: dict[str, str] = {}
        for ref in OFFICIAL_IMAGES:
            self.official[ref] = self._official(ref, failed)
        if failed:
            causes = sorted(set(failed.values()))
            self.say(f"gatewaybench: {', '.join(failed)} cannot be pulled ({'; '.join(causes)}); "
                     "using local equivalents built from the apt mirror")  # fmt: skip
        return self.official

    def _official(self, ref: str, failed: dict[str, str]) -> Image | None:
        try:
            return Image(ref, self.client.images.get(ref).id, OFFICIAL_PRESENT)
        except ImageNotFound:
            pass
        t0 = time.monotonic()
        error = self._pull(ref)
        if error:
            failed[ref] = error
            return None
        took = time.monotonic() - t0
        self.say(f"gatewaybench: pulled {ref} in {took:.0f} s")
        return Image(ref, self.client.images.get(ref).id, OFFICIAL_PULLED, took)

    def _pull(self, ref: str) -> str:
        """Empty once pulled, else why not (the last part of the engine's message: its cause)."""
        repository, _, tag = ref.partition(":")
        try:
            for event in self.client.api.pull(repository, tag=tag, stream=True, decode=True):
                if "error" in event:
                    return _cause(str(event["error"]))
        except DockerException as exc:
            return _cause(str(exc))
        return ""

    # Local equivalents, from the apt mirror.

    def base(self) -> Image:
        """Official Debian when there is one (no root needed), else a base from mmdebstrap."""
        return self.official.get(DEBIAN_IMAGE) or self._cached(BASE_TAG, self._build_base)

    def local_postgres(self) -> Image:
        return self._local(LOCAL_POSTGRES, "postgres.Dockerfile", ("postgres-entrypoint.sh",))

    def local_nginx(self) -> Image:
        return self._local(LOCAL_NGINX, "nginx.Dockerfile", ())

    def local_python(self) -> Image:
        extra = {"host-ca.crt": host_ca_bundle(self.environ)}
        return self._local(LOCAL_PYTHON, "python.Dockerfile", (), extra)

    def _local(
        self,
        tag: str,
        dockerfile: str,
        files: tuple[str, ...],
        extra: Mapping[str, bytes] | None = None,
    ) -> Image:
        def build() -> Image:
            local = self.root / LOCAL_DIR
            context = {name: (local / name).read_bytes() for name in (dockerfile, *files)}
            context.update(extra or {})
            base = self.base()
            build = BuildPlan(
                tag, dockerfile, context, {"BASE_IMAGE": base.name}, base.id, LOCAL_APT
            )
            return self._build(build)

        return self._cached(tag, build)

    def upstream(self, debian: Image) -> Image:
        """docker/upstream.Dockerfile on the official Debian image, as docker-compose.yml does."""
        dockerfile = Path(UPSTREAM_DOCKERFILE).name
        context = {dockerfile: (self.root / UPSTREAM_DOCKERFILE).read_bytes()}
        build = BuildPlan(UPSTREAM_IMAGE, dockerfile, context, {"DEBIAN_IMAGE": debian.name},
                      debian.id, FROM_UPSTREAM_DOCKERFILE)  # fmt: skip
        return self._cached(UPSTREAM_IMAGE, lambda: self._build(build))

    def app(self, python: Image) -> Image:
        """docker/app.Dockerfile, tagged with the hash of its inputs: rebuilt exactly when the
        context, the Dockerfile or the base changes."""
        context = build_context(self.root).getvalue()
        args = {"PYTHON_IMAGE": python.name}
        build = BuildPlan("", DOCKERFILE, {}, args, python.id, FROM_APP_DOCKERFILE, context)
        build = replace(build, tag=f"{APP_REPOSITORY}:{build.inputs[:16]}")
        return self._cached(build.tag, lambda: self._build(build))

    # Building and caching.

    def _cached(self, tag: str, make: Callable[[], Image]) -> Image:
        """Built (or checked) once per call, whoever asks."""
        if tag not in self._done:
            self._done[tag] = make()
        return self._done[tag]

    def _existing(self, tag: str, inputs: str) -> Any | None:
        """The image under this tag if it was built from the same inputs."""
        try:
            image = self.client.images.get(tag)
        except ImageNotFound:
            return None
        return image if image.labels.get(INPUTS_LABEL) == inputs else None

    def _build(self, build: BuildPlan) -> Image:
        existing = self._existing(build.tag, build.inputs)
        if existing is not None:
            return Image(build.tag, existing.id, build.source)
        t0 = time.monotonic()
        self._run_build(build)
        took = time.monotonic() - t0
        image = self.client.images.get(build.tag)
        self.say(f"gatewaybench: built {build.tag} from {build.origin} in {took:.0f} s")
        return Image(build.tag, image.id, build.source, took)

    def _run_build(self, build: BuildPlan) -> None:
        """The classic builder through the API (no BuildKit: it needs a registry for itself)."""
        tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
        stream = self.client.api.build(
            fileobj=io.BytesIO(build.context_tar()),
            custom_context=True,
            dockerfile=build.dockerfile,
            tag=build.tag,
            buildargs=build.args,
            labels={PROJECT_LABEL: "image", INPUTS_LABEL: build.inputs},
            rm=True,
            forcerm=True,
            pull=False,
            decode=True,
        )
        try:
            for chunk in stream:
                tail.extend(_lines(chunk.get("stream", "")))
                if "error" in chunk:
                    raise _build_failed(build, str(chunk["error"]), tail)
        except DockerException as exc:
            raise _build_failed(build, str(exc), tail) from None

    def _build_base(self) -> Image:
        """Debian 12 from the host's apt sources with mmdebstrap, imported as an image."""
        sources = apt_sources()
        inputs = inputs_hash(sources.read_bytes(), {"variant": "apt", "suite": SUITE}, "")
        existing = self._existing(BASE_TAG, inputs)
        if existing is not None:
            return Image(BASE_TAG, existing.id, LOCAL_APT)
        require_mmdebstrap()
        t0 = time.monotonic()
        tmp = Path(tempfile.mkdtemp(prefix="gb-base-"))
        try:
            rootfs = tmp / "rootfs.tar"
            process.run_to_completion(
                "mmdebstrap",
                ["mmdebstrap", "--variant=apt", SUITE, str(rootfs), str(sources)],
                log_path=tmp / "mmdebstrap.log",
                timeout_s=MMDEBSTRAP_TIMEOUT_S,
                env=self.environ,
            )
            changes = [f"LABEL {PROJECT_LABEL}=image", f"LABEL {INPUTS_LABEL}={inputs}"]
            # "name:tag" as the repository: podman ignores a separate tag on import.
            self.client.api.import_image(src=str(rootfs), repository=BASE_TAG, changes=changes)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        took = time.monotonic() - t0
        self.say(f"gatewaybench: built {BASE_TAG} with mmdebstrap in {took:.0f} s")
        return Image(BASE_TAG, self.client.images.get(BASE_TAG).id, LOCAL_APT, took)


@dataclass(frozen=True)
class BuildPlan:
    """One image to build: its context in memory, and what its inputs label says."""

    tag: str
    dockerfile: str  # its path inside the context
    files: Mapping[str, bytes]  # the context, unless `tar` is given
    args: Mapping[str, str]
    base_id: str
    source: str
    tar: bytes | None = None  # a ready-made context (the app's)

    @property
    def origin(self) -> str:
        """The Dockerfile in the repository, for messages."""
        if self.source == LOCAL_APT:
            return f"{LOCAL_DIR}/{self.dockerfile}"
        return UPSTREAM_DOCKERFILE if self.source == FROM_UPSTREAM_DOCKERFILE else DOCKERFILE

    @property
    def inputs(self) -> str:
        content = tar_content(self.tar) if self.tar is not None else self._files_content()
        return inputs_hash(content, self.args, self.base_id)

    def _files_content(self) -> bytes:
        digest = hashlib.sha256()
        for name in sorted(self.files):
            digest.update(f"{name}\0{len(self.files[name])}\0".encode())
            digest.update(self.files[name])
        return digest.digest()

    def context_tar(self) -> bytes:
        if self.tar is not None:
            return self.tar
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name, data in sorted(self.files.items()):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mode = 0o755 if name.endswith(".sh") else 0o644
                tar.addfile(info, io.BytesIO(data))
        return buf.getvalue()


def inputs_hash(content: bytes, args: Mapping[str, str], base_id: str) -> str:
    digest = hashlib.sha256(content)
    digest.update(json.dumps({"args": dict(args), "base": base_id}, sort_keys=True).encode())
    return digest.hexdigest()


def tar_content(data: bytes) -> bytes:
    """A digest of what a context tar holds (names, modes, bytes), not of when it was made:
    a checkout or a `touch` changes mtimes, and must not rebuild the image."""
    digest = hashlib.sha256()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            digest.update(f"{member.name}\0{member.type!r}\0{member.mode:o}\0".encode())
            extracted = tar.extractfile(member) if member.isfile() else None
            if extracted is not None:
                digest.update(extracted.read())
    return digest.digest()


def host_ca_bundle(environ: Mapping[str, str]) -> bytes:
    """The CA bundle this machine's own TLS uses (empty if none: the image's bundle then)."""
    candidates = [environ.get(var, "") for var in HOST_CA_CANDIDATES] + [str(HOST_CA_DEFAULT)]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate).read_bytes()
    return b""


def apt_sources() -> Path:
    """The host's apt sources for mmdebstrap, which must be Debian 12's (the Dockerfiles'
    package names are bookworm's)."""
    if _os_codename() != SUITE:
        raise UsageError(
            f"the local images are built from Debian 12 ({SUITE}) apt sources, and this host "
            f"is not Debian 12",
            "make the official images available to the engine (pull them where a registry is "
            "reachable, then `docker save` / `docker load`), or run on Debian 12",
        )
    for path in APT_SOURCES:
        if path.is_file() and path.stat().st_size:
            return path
    raise UsageError("no apt sources on this host", f"configure apt ({APT_SOURCES[0]})")


def _os_codename() -> str:
    try:
        lines = Path("/etc/os-release").read_text().splitlines()
    except OSError:
        return ""
    values = dict(line.split("=", 1) for line in lines if "=" in line)
    return values.get("VERSION_CODENAME", "").strip('"')


def require_mmdebstrap() -> None:
    if os.geteuid() != 0 or shutil.which("mmdebstrap") is None:
        raise UsageError(
            "no image registry answers, and building the local base image needs root and "
            "mmdebstrap",
            "run as root after `make engine` (it installs mmdebstrap), or make the official "
            "images available to the engine",
        )


def _build_failed(build: BuildPlan, error: str, tail: Iterable[str]) -> StackError:
    fix = ("check PyPI is reachable from a container (pip uses PIP_CERT)"
           if build.source == FROM_APP_DOCKERFILE
           else "check the apt mirror is reachable (apt-get update)")  # fmt: skip
    return StackError(f"building {build.tag} failed: {error.strip()}", fix, "\n".join(tail))


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _cause(message: str) -> str:
    """The engines nest causes with ": "; the innermost says what went wrong."""
    return message.strip().rsplit(": ", 1)[-1] or message
