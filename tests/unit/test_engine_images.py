"""compose/host.py and compose/images.py without an engine: what decides a rebuild, which image a
service gets, how the engine is recognised (tests/integration/test_engine_host.py runs them)."""

from __future__ import annotations

import io
import resource
import shutil
import tarfile
import time
from dataclasses import replace
from pathlib import Path

import pytest

from gatewaybench import cli
from gatewaybench.compose import host, services
from gatewaybench.compose.engine import build_context, file_tar
from gatewaybench.compose.host import containers_conf, engine_kind
from gatewaybench.compose.images import LOCAL_APT, BuildPlan, Image, ImageSet, tar_content
from gatewaybench.compose.model import Service
from tests.conftest import REPO


def _tar(files: dict[str, bytes], mtime: float) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), int(mtime)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_an_uploaded_file_archive_ends_at_its_end_marker_without_record_padding() -> None:
    # Podman's copier closes its pipe at the end marker; padding after it fails the upload
    archive = file_tar("nginx.conf", "x" * 600, 0o644)
    assert len(archive) == 512 * (1 + 2 + 2)  # header, two data blocks, two zero blocks
    assert archive[-1024:] == bytes(1024)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        member = tar.getmember("nginx.conf")
        assert (member.size, member.mode) == (600, 0o644)
        extracted = tar.extractfile(member)
        assert extracted is not None and extracted.read() == b"x" * 600


def test_a_context_hash_ignores_times_but_not_content() -> None:
    files = {"Dockerfile": b"FROM x\n", "app/a.py": b"print(1)\n"}
    now = time.time()
    assert tar_content(_tar(files, now)) == tar_content(_tar(files, now - 3600))
    changed = {**files, "app/a.py": b"print(2)\n"}
    assert tar_content(_tar(files, now)) != tar_content(_tar(changed, now))


def test_the_app_context_hashes_the_same_twice() -> None:
    first, second = build_context(REPO).getvalue(), build_context(REPO).getvalue()
    assert tar_content(first) == tar_content(second)


def test_inputs_change_with_the_dockerfile_the_arguments_and_the_base() -> None:
    plan = BuildPlan("t", "x.Dockerfile", {"x.Dockerfile": b"FROM b\n"}, {"A": "1"}, "id1", "s")
    assert plan.inputs == replace(plan, tag="u", source="other").inputs  # not inputs
    for other in (
        BuildPlan("t", "x.Dockerfile", {"x.Dockerfile": b"FROM c\n"}, {"A": "1"}, "id1", "s"),
        BuildPlan("t", "x.Dockerfile", {"x.Dockerfile": b"FROM b\n"}, {"A": "2"}, "id1", "s"),
        BuildPlan("t", "x.Dockerfile", {"x.Dockerfile": b"FROM b\n"}, {"A": "1"}, "id2", "s"),
    ):
        assert other.inputs != plan.inputs


def test_a_service_gets_the_prepared_image_by_variable_or_by_default_name() -> None:
    local = Image("localhost/gatewaybench-nginx:bookworm", "sha256:n", LOCAL_APT)
    images = ImageSet(
        postgres=Image("localhost/gatewaybench-postgres:15", "sha256:p", LOCAL_APT),
        nginx=local,
        upstream=local,
        app=Image("gatewaybench-app:0123456789abcdef", "sha256:a", "built"),
    )
    assert images.apply(services.upstream_service()).image == local.name  # GB_UPSTREAM_IMAGE
    spec_free = Service("pg", services.POSTGRES_IMAGE, (), "postgres")
    assert images.apply(spec_free).image == images.postgres.name
    other = Service("x", "busybox:1", (), "")
    assert images.apply(other) == other
    assert images.variables()["GB_APP_IMAGE"] == "gatewaybench-app:0123456789abcdef"
    assert images.to_json()["GB_NGINX_IMAGE"]["source"] == LOCAL_APT


def test_engine_kind_from_the_version_components() -> None:
    podman = {"Components": [{"Name": "Podman Engine"}, {"Name": "Conmon"}]}
    docker = {"Components": [{"Name": "Engine"}, {"Name": "containerd"}]}
    assert (engine_kind(podman), engine_kind(docker), engine_kind({})) == (
        "podman",
        "docker",
        "docker",
    )


def test_containers_conf_uses_our_own_hard_limit_and_runc() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    text = containers_conf()
    assert f'"nofile={hard}:{hard}"' in text and 'runtime = "runc"' in text


def test_no_engine_is_a_usage_error_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Fault injection (no engine anywhere): one line naming the fix, exit 2, no run directory."""
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setattr(host, "DOCKER_SOCKET", tmp_path / "no-docker.sock")
    real_which = shutil.which
    monkeypatch.setattr(host.shutil, "which", lambda n: None if n == "podman" else real_which(n))
    reports = tmp_path / "reports"
    assert cli.main(["run", "--backend", "compose", "--reports-dir", str(reports)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no container engine" in err and "make engine" in err
    assert not reports.exists() or not any(reports.iterdir())
