"""A tiny real bench: real PostgreSQL, nginx, all eight servers and Locust, end to end."""

from __future__ import annotations

import csv
import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import assert_nothing_left
from tests.harness import run_bench, run_dir_of, start, step_rows, wait_for_path

pytestmark = pytest.mark.e2e

SERVERS = ("gunicorn", "uvicorn", "daphne", "hypercorn")
# The four servers beyond the seed, each with a variant.
OTHERS = ("gunicorn-gthread+pool", "gunicorn-uvicorn+async", "granian-wsgi+persistent",
          "granian-asgi+async+pool")  # fmt: skip
# Short steps: nothing here depends on a steady state (no rates or latencies are judged).
TINY = ["--users", "4,8", "--ramp", "1", "--warmup", "1", "--window", "2", "--workers", "2"]


@dataclass(frozen=True)
class Run:
    reports: Path
    out: str
    run_dir: Path
    rows: list[dict[str, str]]


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """One matrix of every server (the seed's four, then the others with a variant), one step
    each, that both tests below read. (Several steps per cell, in matrix order, are run and
    checked in test_waits.py, test_crash.py and test_calibration.py.)"""
    reports = tmp_path_factory.mktemp("bench")
    cells = ",".join(SERVERS + OTHERS)
    run = run_bench(reports, *TINY, "--label", "e2e", "--cells", cells, "--users", "4",
                    "--threads", "2", timeout_s=600)  # fmt: skip
    return Run(reports, run.stdout, run.run_dir, run.rows)


def test_tiny_bench_end_to_end(bench: Run) -> None:
    out, run_dir, rows = bench.out, bench.run_dir, bench.rows
    lines = out.strip().splitlines()
    assert run_dir.parent == bench.reports and run_dir.name.endswith("-e2e"), lines[-1]
    assert "Failure % by server x users" in out and "Requests/sec by server x users" in out
    assert lines[-2] == f"report: {run_dir / 'report.html'}"
    for name in ("report.html", "summary.md", "results.json"):
        assert (run_dir / name).is_file(), name

    assert [(r["server"], r["users"]) for r in rows] == [(s, "4") for s in SERVERS + OTHERS]
    for row in rows:
        assert row["status"] == "ok", row
        assert int(row["requests"]) > 0 and float(row["rps"]) > 0, row
        assert float(row["p95_ms"]) > 0 and float(row["max_ms"]) >= float(row["p95_ms"])
        assert row["window_s"] == "2"
        if row["drained"] == "True":
            assert row["votes_db"] == row["votes_ok"], row
            assert int(row["votes_ok"]) > 0
    assert any(r["drained"] == "True" for r in rows)

    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["schema_version"] == 1
    for key in (
        "python",
        "django",
        "locust",
        "gunicorn",
        "uvicorn",
        "daphne",
        "hypercorn",
        "nginx",
        "postgresql",
    ):
        assert manifest["versions"][key] not in ("", "unknown", "not installed"), key
    assert manifest["machine"]["cores"] >= 1
    assert "commit" in manifest["git"]
    assert manifest["spec"]["load"]["users"] == [4]
    # daphne has no workers option: the budget's 2 processes are 2 instances on one socket.
    assert manifest["servers"]["daphne"]["processes"] == 2
    assert "gatewaybench.stack.instances" in manifest["servers"]["daphne"]["argv"]
    assert {s: manifest["servers"][s]["status"] for s in SERVERS + OTHERS} == dict.fromkeys(
        SERVERS + OTHERS, "complete"
    )
    assert "secret" not in json.dumps(manifest).lower()
    step_dir = run_dir / "raw" / "gunicorn" / "r1" / "u4"
    assert (step_dir / "locust_stats.csv").is_file()
    hist = json.loads((step_dir / "window-histogram.json").read_text())
    assert sum(hist["counts"].values()) == int(rows[0]["requests"])
    with (run_dir / "resources.csv").open() as fh:
        resources = list(csv.DictReader(fh))
    assert {r["component"] for r in resources} == {"app", "locust", "nginx", "postgres"}
    for r in resources:
        assert float(r["cpu_pct"]) >= 0 and float(r["peak_rss_mb"]) > 0, r
    assert (run_dir / "failures.csv").is_file()
    for row in rows:  # nginx's own count of the window agrees with ours within 1 %
        assert abs(int(row["nginx_requests"]) - int(row["requests"])) <= max(
            1, 0.01 * int(row["requests"])
        ), row
    assert (run_dir / "logs" / "postgres.log").is_file()
    assert not (run_dir / "pgdata").exists(), "the cluster is deleted at the end"
    assert (bench.reports / "latest").resolve() == run_dir.resolve()


def test_the_other_servers_and_variants_run_real_steps(bench: Run) -> None:
    """The four servers beyond the seed, each with a variant, under real Locust load."""
    run_dir, rows = bench.run_dir, bench.rows
    assert [r["server"] for r in rows][len(SERVERS) :] == list(OTHERS)
    assert all(r["status"] == "ok" and int(r["requests"]) > 0 for r in rows), rows
    assert all(r["integrity"] == "exact" or r["integrity"] == "consistent" for r in rows), rows
    servers = json.loads((run_dir / "manifest.json").read_text())["servers"]
    assert {s: (servers[s]["runtime"]["driver"], servers[s]["runtime"]["views"])
            for s in OTHERS} == {
        "gunicorn-gthread+pool": ("psycopg3", "sync"),
        "gunicorn-uvicorn+async": ("psycopg2", "async"),
        "granian-wsgi+persistent": ("psycopg2", "sync"),
        "granian-asgi+async+pool": ("psycopg3", "async"),
    }  # fmt: skip
    assert servers["gunicorn-gthread+pool"]["threads"] == "2"
    assert servers["gunicorn-gthread+pool"]["max_db_connections"] == "4"
    assert "Cells as run" in (run_dir / "report.html").read_text()


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_mid_run_keeps_finished_steps_and_leaves_nothing(
    tmp_path: Path, sig: int, code: int
) -> None:
    # Many steps after the first: the signal must land mid-run even if this test is slow to
    # notice the first row (the run ends at the signal, so they cost nothing).
    args = [*TINY, "--servers", "gunicorn,uvicorn", "--label", "intr", "--users", "4,8,12,16,20"]
    with start("run", *args, reports=tmp_path) as proc:
        steps_csv = wait_for_path(
            tmp_path,
            "*-intr/steps.csv",
            proc,
            timeout_s=300,
            ready=lambda p: bool(step_rows(p.parent)),
        )
        run_dir = steps_csv.parent
        os.kill(proc.pid, sig)
        sent_after = len(step_rows(run_dir))
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-3000:]
    assert run_dir_of(out) == run_dir
    manifest = json.loads((run_dir / "manifest.json").read_text())
    # A signal lost in a finaliser must still end the run (gatewaybench.signals.checkpoint).
    assert manifest["status"] == "interrupted", (sent_after, err[-3000:])
    assert len(step_rows(run_dir)) <= sent_after + 1, "at most the step under way finishes"
    assert "is interrupted" in (run_dir / "summary.md").read_text()  # the report says so
    assert len(step_rows(run_dir)) >= 1  # the step that finished before the signal is kept
    assert_nothing_left(str(run_dir))
