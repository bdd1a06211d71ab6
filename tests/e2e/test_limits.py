"""Hard limits produce failures, and the harness names who caused them and why.

Short real runs: nginx with too few worker_connections, and PostgreSQL with too few
max_connections under an ASGI server (sync views run in threads, one connection each).
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tests.harness import run_bench

pytestmark = pytest.mark.e2e

# The limits fail requests all the time (60 users, 24 connections; 40 users, 3 database
# slots): a short window holds failures for certain.
SHORT = ["--ramp", "1", "--warmup", "1", "--window", "2", "--workers", "2"]


def _run(reports: Path, *args: str) -> Path:
    return run_bench(reports, *SHORT, *args, timeout_s=300).run_dir


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_low_nginx_worker_connections_are_blamed_on_nginx(tmp_path: Path) -> None:
    run_dir = _run(tmp_path, "--servers", "gunicorn", "--users", "60", "--processes", "auto",
                   "--nginx-worker-processes", "1", "--nginx-worker-connections", "24")  # fmt: skip
    (step,) = _csv(run_dir / "steps.csv")
    assert float(step["fail_pct"]) > 0, step
    failures = _csv(run_dir / "failures.csv")
    blamed = [f for f in failures if f["source"] == "nginx"]
    assert blamed, failures
    assert all("worker_connections (24) are not enough" in f["cause"] for f in blamed), blamed
    assert sum(int(f["count"]) for f in blamed) == int(step["failures"])


def test_low_postgres_max_connections_under_asgi_are_blamed_on_postgres(tmp_path: Path) -> None:
    # 3 of the 6 slots are reserved for superusers (the harness); the app gets 3.
    run_dir = _run(tmp_path, "--servers", "uvicorn", "--users", "40", "--pg-max-connections", "6")
    (step,) = _csv(run_dir / "steps.csv")
    failures = _csv(run_dir / "failures.csv")
    http500 = [f for f in failures if f["kind"] == "HTTP 500"]
    assert http500, failures
    assert http500[0]["source"] == "PostgreSQL", http500
    assert "max_connections (6) exhausted" in http500[0]["cause"]
    assert "FATAL" in http500[0]["evidence"]
    assert int(step["pg_clients_peak"]) <= 6
    assert step["integrity"] in ("exact", "consistent")  # failed votes were not counted
    resources = {r["component"] for r in _csv(run_dir / "resources.csv")}
    assert resources == {"app", "locust", "nginx", "postgres"}
