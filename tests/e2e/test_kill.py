"""SIGKILL of the harness: its children die with it (parent-death signal), and the next run in
the same reports directory marks the dead run interrupted and removes its leftovers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, assert_nothing_left

pytestmark = pytest.mark.e2e

TINY = ["--ramp", "1", "--warmup", "1", "--window", "2", "--servers", "uvicorn"]


def _bench(reports: Path, users: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "gatewaybench", "run", *TINY, "--users", users,
         "--reports-dir", str(reports)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_sigkill_leaves_nothing_running_and_the_next_run_cleans_up(tmp_path: Path) -> None:
    proc = _bench(tmp_path, "5,10,15")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        runs = [p for p in tmp_path.glob("*-bench") if (p / "steps").is_dir()]
        if runs and list((runs[0] / "steps").glob("*.json")):
            break
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        time.sleep(0.2)
    (killed,) = runs
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert_nothing_left(str(killed), grace_s=20)  # postgres, uvicorn workers, nginx, locust
    manifest = json.loads((killed / "manifest.json").read_text())
    assert manifest["status"] == "running"
    data_dir = Path(manifest["resolved"]["postgres_data_dir"])
    assert data_dir.exists()  # the cluster the killed harness could not delete

    nxt = _bench(tmp_path, "3")
    out, err = nxt.communicate(timeout=300)
    assert nxt.returncode == 0, err[-3000:]
    assert f"{killed.name}: its harness was killed" in err
    manifest = json.loads((killed / "manifest.json").read_text())
    assert manifest["status"] == "interrupted" and "killed" in manifest["error"]
    assert not data_dir.exists()
    assert not Path(manifest["resolved"]["postgres_socket_dir"]).exists()
    assert (killed / "steps.csv").read_text().count("\n") >= 2  # what it measured is kept
    leftovers = list(Path(tempfile.gettempdir()).glob(f"gatewaybench-*-{proc.pid}-*"))
    assert not leftovers, leftovers  # its nginx temp dir and postgres socket dir too
    assert_nothing_left(out.strip().splitlines()[-1])


def test_interrupt_during_initdb_lets_it_finish_and_leaks_no_shared_memory(tmp_path: Path) -> None:
    """initdb stopped mid-bootstrap deletes the data directory under its backend, which then
    dies without removing its shared memory; the harness lets initdb finish first."""
    shm_before = set(Path("/dev/shm").glob("PostgreSQL.*"))
    proc = _bench(tmp_path, "3")
    deadline = time.monotonic() + 60
    initdb_log: Path | None = None
    while time.monotonic() < deadline and initdb_log is None:
        found = list(tmp_path.glob("*-bench/logs/initdb.log"))
        initdb_log = found[0] if found and found[0].stat().st_size else None
        time.sleep(0.02)
    assert initdb_log is not None, "initdb never started"
    os.kill(proc.pid, signal.SIGINT)
    proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert "Success" in initdb_log.read_text()  # initdb ran to its end despite the signal
    assert set(Path("/dev/shm").glob("PostgreSQL.*")) <= shm_before
    assert_nothing_left(str(initdb_log.parents[1]))
