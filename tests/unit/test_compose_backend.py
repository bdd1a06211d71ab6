"""`run --backend compose` end to end against a stand-in for the docker SDK (no engine here).

StandInDocker is not Docker: it answers the SDK calls the backend makes with what an engine
would, and its "Locust" containers leave per-second records like real ones. It checks the code
path (containers from the model, health waits, audit by psql, stats, copies, logs, teardown)
and the run directory it writes; tests/unit/test_compose_real_engine.py runs the real thing
wherever `docker info` succeeds.
"""

from __future__ import annotations

import csv
import io
import json
import tarfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from gatewaybench.analysis.records import TASK_KEY
from gatewaybench.compose import backend, services
from gatewaybench.compose.engine import LABEL
from gatewaybench.matrix import Cell
from gatewaybench.spec import DjangoSettings, LoadSettings, RunSpec

USERS = 30
VOTES_PER_WORKER = 40


class StandInContainer:
    def __init__(self, world: StandInDocker, image: str, kwargs: dict[str, Any]) -> None:
        self.world, self.image, self.kwargs = world, image, kwargs
        self.name: str = kwargs["name"]
        self.labels: dict[str, str] = kwargs["labels"]
        self.service = self.labels[f"{LABEL}.service"]
        self.files: dict[str, bytes] = {}
        self.status = "created"
        self.cpu_ns = 0
        self.removed = False

    @property
    def attrs(self) -> dict[str, Any]:
        running = self.status == "running"
        return {"State": {"Status": self.status, "Running": running,
                          "Health": {"Status": "healthy" if running else "starting"}}}  # fmt: skip

    def put_archive(self, path: str, data: bytes) -> bool:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for m in tar.getmembers():
                f = tar.extractfile(m)
                assert f is not None
                self.files[f"{path}/{m.name}"] = f.read()
        return True

    def start(self) -> None:
        self.status = "running"

    def reload(self) -> None:
        pass

    def wait(self, timeout: float) -> dict[str, int]:
        if self.service == "locust-master":
            self.world.run_step(self)
        self.status = "exited"
        return {"StatusCode": 0}

    def stop(self, timeout: int = 10) -> None:
        self.status = "exited"

    def remove(self, force: bool = False) -> None:
        self.removed = True
        self.world.removed.append(self.name)

    def exec_run(self, cmd: list[str], user: str = "") -> tuple[int, bytes]:
        return self.world.exec(self, cmd)

    def logs(self, **kwargs: Any) -> bytes:
        return f"{self.service} log\n".encode()

    def stats(self, stream: bool, one_shot: bool) -> dict[str, Any]:
        self.cpu_ns += 50_000_000
        return {
            "cpu_stats": {"cpu_usage": {"total_usage": self.cpu_ns}},
            "memory_stats": {"usage": 90 << 20, "stats": {"anon": 40 << 20}},
            "pids_stats": {"current": 3},
        }

    def top(self, ps_args: str) -> dict[str, Any]:
        rows = [["1", f"{self.service} main"]]
        if self.service == "postgres":
            rows.append(["42", "postgres: polls polls 172.18.0.5(40000) idle"])
        return {"Processes": rows}

    def get_archive(self, path: str) -> tuple[Any, dict[str, Any]]:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name, data in self.files.items():
                if name.startswith(path + "/"):
                    info = tarfile.TarInfo("records/" + name.rsplit("/", 1)[1])
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        return iter([buf.getvalue()]), {}


class StandInCollection:
    def __init__(self, world: StandInDocker) -> None:
        self.world = world


class StandInContainers(StandInCollection):
    def create(self, image: str, **kwargs: Any) -> StandInContainer:
        container = StandInContainer(self.world, image, kwargs)
        self.world.created.append(container)
        return container

    def list(self, all: bool, filters: dict[str, str]) -> list[StandInContainer]:
        key, _, value = filters["label"].partition("=")
        return [c for c in self.world.created if not c.removed and c.labels.get(key) == value]


class StandInObject:
    def __init__(self, world: StandInDocker, kind: str, name: str) -> None:
        self.world, self.kind, self.name = world, kind, name

    def remove(self, force: bool = False) -> None:
        self.world.removed.append(f"{self.kind}:{self.name}")


class StandInNetworks(StandInCollection):
    def create(self, name: str, driver: str, labels: dict[str, str]) -> StandInObject:
        return StandInObject(self.world, "network", name)


class StandInVolumes(StandInCollection):
    def create(self, name: str, labels: dict[str, str]) -> StandInObject:
        self.world.volumes.append(name)
        return StandInObject(self.world, "volume", name)


class StandInImages(StandInCollection):
    def pull(self, repo: str, tag: str) -> None:
        self.world.pulled.append(f"{repo}:{tag}")

    def build(self, **kwargs: Any) -> tuple[None, list[str]]:
        with tarfile.open(fileobj=kwargs["fileobj"]) as tar:
            names = tar.getnames()
        self.world.built.append((kwargs["tag"], names))
        return None, []


class StandInApi:
    def create_endpoint_config(self, aliases: list[str]) -> dict[str, Any]:
        return {"Aliases": aliases}


class StandInDocker:
    """A stand-in for docker.DockerClient: records what the backend asks for."""

    def __init__(self) -> None:
        self.created: list[StandInContainer] = []
        self.removed: list[str] = []
        self.volumes: list[str] = []
        self.pulled: list[str] = []
        self.built: list[tuple[str, list[str]]] = []
        self.votes = 0
        self.containers = StandInContainers(self)
        self.networks = StandInNetworks(self)
        self.volumes_api = StandInVolumes(self)
        self.images = StandInImages(self)
        self.api = StandInApi()

    def ping(self) -> bool:
        return True

    def exec(self, container: StandInContainer, cmd: list[str]) -> tuple[int, bytes]:
        if cmd[0] == "psql":
            sql = cmd[cmd.index("-c") + 1]
            if sql.startswith("SELECT id"):
                return 0, b"1\n2\n3\n"
            if "SUM(votes)" in sql:
                return 0, str(self.votes).encode()
            if sql.startswith("UPDATE"):
                self.votes = 0
            return 0, b""
        if cmd[0] == "postgres":
            return 0, b"postgres (PostgreSQL) 15.10"
        return 0, json.dumps({"python": "3.11.11", "django": "5.2.19"}).encode()

    def run_step(self, master: StandInContainer) -> None:
        """What Locust's master and workers would leave: records for a steady window."""
        workers = [c for c in self.created if c.service == "locust-worker" and c.status != "exited"]
        t0 = int(time.time()) - 20
        master.files["/records/record-master-1.json"] = _record("master", {}, t0, {})
        seconds = {
            str(s): {
                "GET /polls/[id]/": {"count": 5, "failures": 0, "hist": {"20000": 5}},
                TASK_KEY: {"count": round((USERS / len(workers) - 5 * 0.02) / 1.5), "failures": 0},
            }
            for s in range(t0, t0 + 15)
        }
        votes = {"attempted": VOTES_PER_WORKER, "acknowledged": VOTES_PER_WORKER}
        for w in workers:
            w.files["/records/record-worker-1.json"] = _record("worker", seconds, t0, votes)
            w.files["/records/locust_stats.csv"] = b"Name,Request Count\n"
            self.votes += VOTES_PER_WORKER


def _record(role: str, seconds: dict[str, Any], t0: int, votes: dict[str, int]) -> bytes:
    events = {"spawning_complete": t0 + 0.5, "test_stopping": t0 + 14.3} if role == "master" else {}
    return json.dumps({"schema_version": 1, "pid": 1, "role": role, "events": events,
                       "votes": votes, "cpu": [[t0, 0.1], [t0 + 15, 0.4]],
                       "seconds": seconds}).encode()  # fmt: skip


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> StandInDocker:
    world = StandInDocker()
    # The scenario check talks HTTP to the published port; with no engine there is none.
    monkeypatch.setattr(backend, "verify_scenario", lambda port, question: None)
    return world


class _Client:
    """The stand-in under the attribute names of docker.DockerClient."""

    def __init__(self, world: StandInDocker) -> None:
        self.world = world
        self.containers, self.networks = world.containers, world.networks
        self.volumes, self.images, self.api = world.volumes_api, world.images, world.api

    def ping(self) -> bool:
        return True


def _spec(tmp_path: Path) -> RunSpec:
    load = LoadSettings(users=(USERS,), ramp_s=1, warmup_s=1, window_s=10, processes=2)
    return RunSpec(cells=(Cell("gunicorn"),), workers=2, reports_dir=tmp_path, load=load)


def test_a_compose_run_writes_the_local_backends_run_directory(
    tmp_path: Path, stand_in: StandInDocker
) -> None:
    out, log = io.StringIO(), io.StringIO()
    code = backend.run_compose(_spec(tmp_path), out, log, client_factory=lambda: _Client(stand_in))
    assert code == 0, log.getvalue()
    run_dir = Path(out.getvalue().strip().splitlines()[-1])
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["backend"] == "compose"
    rows = list(csv.DictReader((run_dir / "steps.csv").open()))
    assert [(r["server"], r["users"], r["status"]) for r in rows] == [("gunicorn", "30", "ok")]
    assert rows[0]["votes_db"] == str(2 * VOTES_PER_WORKER) and rows[0]["integrity"] == "exact"
    assert rows[0]["gen_processes"] == "2"
    components = {r["component"] for r in csv.DictReader((run_dir / "resources.csv").open())}
    assert components == {"app", "locust", "nginx", "postgres"}
    raw = run_dir / "raw" / "gunicorn" / "r1" / "u30"
    assert sorted(p.name for p in raw.glob("record-*.json")) == [
        "record-c1-worker-1.json", "record-c2-worker-1.json", "record-master-1.json",
    ]  # fmt: skip
    assert (run_dir / "conf" / "nginx-gunicorn.conf").read_text() == services.nginx_config(
        _spec(tmp_path)
    )
    for name in ("postgres.log", "migrate.log", "gunicorn-1.log", "nginx-gunicorn-access.log"):
        assert (run_dir / "logs" / name).exists(), name


def test_containers_follow_the_model_and_everything_is_torn_down(
    tmp_path: Path, stand_in: StandInDocker
) -> None:
    backend.run_compose(
        _spec(tmp_path), io.StringIO(), io.StringIO(), client_factory=lambda: _Client(stand_in)
    )
    by_service = {c.service: c for c in stand_in.created}
    app = by_service["app-gunicorn"]
    assert app.kwargs["command"] == list(services.build_project(_spec(tmp_path)).service(
        "app-gunicorn").command)  # fmt: skip
    assert app.kwargs["networking_config"][app.kwargs["network"]]["Aliases"] == [
        "app-gunicorn", "app",
    ]  # fmt: skip
    published = {c.service: c.kwargs["ports"] for c in stand_in.created if c.kwargs["ports"]}
    assert list(published) == ["nginx"]
    assert [bind[0] for bind in published["nginx"].values()] == ["127.0.0.1"]
    assert "/etc/nginx/nginx.conf" in by_service["nginx"].files
    assert "/docker-entrypoint-initdb.d/10-gatewaybench.sh" in by_service["postgres"].files
    assert sum(c.service == "locust-worker" for c in stand_in.created) == 2
    # down -v: every container, the network and every volume
    assert all(c.removed for c in stand_in.created)
    assert any(r.startswith("network:") for r in stand_in.removed)
    assert {f"volume:{v}" for v in stand_in.volumes} <= set(stand_in.removed)
    assert sorted(stand_in.pulled) == [services.NGINX_IMAGE, services.POSTGRES_IMAGE]
    tag, context = stand_in.built[0]
    assert tag == services.APP_IMAGE
    assert "sample_app/manage.py" in context and not any(".venv" in n for n in context)


def test_secrets_reach_containers_but_never_the_run_directory(
    tmp_path: Path, stand_in: StandInDocker
) -> None:
    out = io.StringIO()
    backend.run_compose(
        _spec(tmp_path), out, io.StringIO(), client_factory=lambda: _Client(stand_in)
    )
    env = next(c for c in stand_in.created if c.service == "app-gunicorn").kwargs["environment"]
    secret = env["GB_DB_PASSWORD"]
    assert len(secret) > 20 and "{{" not in secret
    run_dir = Path(out.getvalue().strip().splitlines()[-1])
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert secret not in path.read_text(errors="replace"), path


def test_no_engine_is_a_usage_error_before_anything_is_written(tmp_path: Path) -> None:
    from docker.errors import DockerException

    def no_engine() -> Any:
        raise DockerException("Error while fetching server API version")

    with pytest.raises(Exception, match="no Docker engine answers"):
        backend.run_compose(_spec(tmp_path), io.StringIO(), io.StringIO(), client_factory=no_engine)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"cells": (Cell("gunicorn", upstream_ms=100),)}, "upstream and database waits"),
        ({"django": DjangoSettings(db_wait_ms=50)}, "upstream and database waits"),
        ({"cells": (Cell("gunicorn", request_buffering=False),)}, "request buffering"),
    ],
)
def test_what_the_compose_runner_cannot_measure_yet_is_refused_first(
    tmp_path: Path, changes: dict[str, Any], needle: str
) -> None:
    from gatewaybench.errors import UsageError

    spec = replace(_spec(tmp_path), **changes)
    with pytest.raises(UsageError, match=needle):
        backend.run_compose(spec, io.StringIO(), io.StringIO(), client_factory=lambda: None)
    assert list(tmp_path.iterdir()) == []
