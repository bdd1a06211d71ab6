"""SIGKILL of the harness: its children die with it (parent-death signal), and the next run in
the same reports directory marks the dead run interrupted and removes its leftovers."""

from __future__ import annotations

import json
import os
import signal
import tempfile
from pathlib import Path

import pytest

from tests.conftest import assert_nothing_left
from tests.harness import run, run_dir_of, start, wait_for_path

pytestmark = pytest.mark.e2e

TINY = ["--ramp", "1", "--warmup", "1", "--window", "2", "--servers", "uvicorn"]


def test_sigkill_leaves_nothing_running_and_the_next_run_cleans_up(tmp_path: Path) -> None:
    with start("run", *TINY, "--users", "5,10,15", reports=tmp_path) as proc:
        wait_for_path(tmp_path, "*-bench/steps/*.json", proc, timeout_s=120)
        (killed,) = tmp_path.glob("*-bench")
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
    assert_nothing_left(str(killed), grace_s=20)  # postgres, uvicorn workers, nginx, locust
    manifest = json.loads((killed / "manifest.json").read_text())
    assert manifest["status"] == "running"
    data_dir = Path(manifest["resolved"]["postgres_data_dir"])
    assert data_dir.exists()  # the cluster the killed harness could not delete

    nxt = run("run", *TINY, "--users", "3", reports=tmp_path, timeout_s=300)
    assert nxt.code == 0, nxt.stderr[-3000:]
    assert f"{killed.name}: its harness was killed" in nxt.stderr
    manifest = json.loads((killed / "manifest.json").read_text())
    assert manifest["status"] == "interrupted" and "killed" in manifest["error"]
    assert not data_dir.exists()
    assert not Path(manifest["resolved"]["postgres_socket_dir"]).exists()
    assert (killed / "steps.csv").read_text().count("\n") >= 2  # what it measured is kept
    leftovers = list(Path(tempfile.gettempdir()).glob(f"gatewaybench-*-{proc.pid}-*"))
    assert not leftovers, leftovers  # its nginx temp dir and postgres socket dir too
    assert_nothing_left(str(run_dir_of(nxt.stdout)))


def test_interrupt_during_initdb_lets_it_finish_and_leaks_no_shared_memory(tmp_path: Path) -> None:
    """initdb stopped mid-bootstrap deletes the data directory under its backend, which then
    dies without removing its shared memory; the harness lets initdb finish first."""
    shm_before = set(Path("/dev/shm").glob("PostgreSQL.*"))
    with start("run", *TINY, "--users", "3", reports=tmp_path) as proc:
        initdb_log = wait_for_path(
            tmp_path, "*-bench/logs/initdb.log", proc, timeout_s=60,
            ready=lambda p: p.stat().st_size > 0, poll_s=0.02,
        )  # fmt: skip
        os.kill(proc.pid, signal.SIGINT)
        proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert "Success" in initdb_log.read_text()  # initdb ran to its end despite the signal
    assert set(Path("/dev/shm").glob("PostgreSQL.*")) <= shm_before
    assert_nothing_left(str(initdb_log.parents[1]))
