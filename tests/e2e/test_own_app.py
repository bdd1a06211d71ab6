"""Bring your own app: a second Django project (tests/byo_app) through the same stack,
measurement and report, with its own locustfile, setup command and health path. The same run
repeats its matrix (servers interleaved, mean ± CI) with Locust's own master/worker processes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.harness import Bench, run, run_bench

pytestmark = pytest.mark.e2e

APP = REPO / "tests" / "byo_app"


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> Bench:
    """One run that both tests read: its own app, two repeats, two Locust processes."""
    return run_bench(
        tmp_path_factory.mktemp("own"),
        "--app-dir", str(APP),
        "--wsgi", "tinysite.wsgi:application",
        "--asgi", "tinysite.asgi:application",
        "--locustfile", str(APP / "locustfile.py"),
        "--setup", "manage.py migrate --noinput",
        "--health-path", "/healthz",
        "--servers", "gunicorn,uvicorn", "--users", "4",
        "--ramp", "1", "--warmup", "1", "--window", "2", "--workers", "2",
        "--repeat", "2", "--processes", "2", "--label", "own",
        timeout_s=300,
    )  # fmt: skip


def test_own_django_project_is_benchmarked_like_the_sample(own: Bench) -> None:
    run_dir, rows = own.run_dir, own.rows
    assert [(r["server"], r["status"], r["valid"]) for r in rows] == [
        ("gunicorn", "ok", "True"),
        ("uvicorn", "ok", "True"),
    ] * 2
    for row in rows:
        assert int(row["requests"]) > 0 and float(row["fail_pct"]) == 0.0
        assert row["integrity"] == "not_measured"  # the polls audit does not apply
        # nginx saw the same requests. (Its p50 may differ by the generator's own delay on a
        # busy machine: a few milliseconds over a dozen requests is timing, not a defect.)
        assert "nginx saw" not in row["xcheck"], row["xcheck"]
        assert abs(int(row["nginx_requests"]) - int(row["requests"])) <= 2, row  # one per edge
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["spec"]["app"]["app_dir"] == str(APP)
    assert manifest["resolved"]["locustfile"] == str(APP / "locustfile.py")
    assert (run_dir / "logs" / "setup-1.log").is_file()
    argvs = [manifest["servers"][s]["argv"] for s in ("gunicorn", "uvicorn")]
    assert argvs[0][-1] == "tinysite.wsgi:application"
    assert argvs[1][-1] == "tinysite.asgi:application"
    # DEBUG as the running app showed it, not as any settings of ours say
    for server in ("gunicorn", "uvicorn"):
        assert manifest["servers"][server]["django"]["DEBUG"] is False
    assert "DEBUG" not in manifest["resolved"].get("django", {})
    assert "DEBUG = True" not in own.stdout
    # The notes the scenario posted are in the project's own table.
    access = (run_dir / "logs" / "nginx-uvicorn-access.log").read_text()
    assert '"POST /notes/"' in access and " 201 " in access
    assert "Cells as run" in (run_dir / "report.html").read_text()


def test_repeat_with_two_locust_processes(own: Bench) -> None:
    run_dir, rows = own.run_dir, own.rows
    # interleaved: gunicorn, uvicorn, gunicorn, uvicorn
    assert [(r["server"], r["repeat"]) for r in rows] == [
        ("gunicorn", "1"), ("uvicorn", "1"), ("gunicorn", "2"), ("uvicorn", "2"),
    ]  # fmt: skip
    for row in rows:
        assert row["gen_processes"] == "2", row  # two workers recorded, merged by the harness
        assert int(row["requests"]) > 0 and row["status"] == "ok"
        step_dir = run_dir / "raw" / row["server"] / f"r{row['repeat']}" / "u4"
        assert len(list(step_dir.glob("record-worker-*.json"))) == 2
    assert "mean of 2 repeats" in own.stdout
    assert "Capacity" in own.stdout


def test_own_app_without_an_asgi_target_is_refused_for_asgi_servers(tmp_path: Path) -> None:
    out = run(
        "run", "--app-dir", str(APP),
        "--wsgi", "tinysite.wsgi:application", "--locustfile", str(APP / "locustfile.py"),
        "--servers", "uvicorn", reports=tmp_path / "r", timeout_s=60,
    )  # fmt: skip
    assert out.code == 2
    assert "uvicorn is ASGI but --asgi is not given" in out.stderr
    assert not (tmp_path / "r").exists()


def test_an_app_with_debug_hard_coded_on_is_recorded_and_called_out(tmp_path: Path) -> None:
    """A project that hard-codes DEBUG = True (tinysite.settings_debug, as a real public project
    did): the manifest records what the running app showed, and the summary and the report say
    loudly that the figures are not production's. Nothing is invalidated."""
    debug = run_bench(
        tmp_path,
        "--app-dir", str(APP),
        "--wsgi", "tinysite.wsgi_debug:application",
        "--locustfile", str(APP / "locustfile.py"),
        "--setup", "manage.py migrate --noinput",
        "--health-path", "/healthz",
        "--servers", "gunicorn", "--users", "2",
        "--ramp", "1", "--warmup", "1", "--window", "2", "--workers", "1", "--label", "debug",
        timeout_s=300,
    )  # fmt: skip
    assert [(r["server"], r["status"], r["valid"]) for r in debug.rows] == [
        ("gunicorn", "ok", "True")
    ]
    manifest = json.loads((debug.run_dir / "manifest.json").read_text())
    observed = manifest["servers"]["gunicorn"]["django"]
    assert observed["DEBUG"] is True and "debug 404 page" in observed["observed_by"]
    caveat = "the app runs with DEBUG = True"
    assert any(caveat in w for w in manifest["resolved"]["warnings"])
    assert caveat in debug.stdout  # the summary's caveats
    assert caveat in (debug.run_dir / "report.html").read_text()
