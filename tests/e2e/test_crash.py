"""A component that dies mid-run fails its cell with the cause and the log tail; the matrix
goes on (with a fresh PostgreSQL when PostgreSQL was the one that died)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from gatewaybench.context import RUN_MARKER_ENV
from tests.conftest import assert_nothing_left
from tests.harness import announced_run_dir, start, wait_for_path

pytestmark = pytest.mark.e2e


def _into_step(run_dir: Path, step: str, proc: subprocess.Popen[str]) -> None:
    wait_for_path(run_dir, step, proc, timeout_s=120, poll_s=0.1)
    time.sleep(2)  # into the step's ramp-up


def _child_running(harness: int, name: str) -> psutil.Process:
    for child in psutil.Process(harness).children():
        if any(name in part for part in child.cmdline()):
            return child
    raise AssertionError(f"no {name} child of the harness")


def _every_child_carries_the_run_marker(harness: int, run_dir: Path) -> None:
    """Everything the run started (the PostgreSQL postmaster, the app server, Locust, nginx)
    starts with the run in its environment, so leftovers are found by it. Processes that write
    their title over their environment block (nginx, PostgreSQL's backends) no longer show one:
    they are judged by their parents."""
    marked, unmarked = set(), []
    for child in psutil.Process(harness).children(recursive=True):
        try:
            name, path = child.name(), f"/proc/{child.pid}/environ"
            block = Path(path).read_bytes().split(b"\0")
        except (psutil.NoSuchProcess, FileNotFoundError, ProcessLookupError):
            continue
        if not block[0] or b"=" not in block[0]:
            continue  # overwritten by the process's own title
        if f"{RUN_MARKER_ENV}={run_dir}".encode() in block:
            marked.add(name)
        else:
            unmarked.append(f"{child.pid} {name}")
    assert not unmarked, unmarked
    assert {"postgres", "gunicorn"} <= marked, marked


def test_postgres_and_app_crashes_fail_their_cells_and_the_matrix_goes_on(tmp_path: Path) -> None:
    args = ["--servers", "gunicorn,uvicorn,hypercorn", "--users", "4,8", "--ramp", "1",
            "--warmup", "1", "--window", "4", "--workers", "2"]  # fmt: skip
    with start("run", *args, reports=tmp_path) as proc:
        run_dir = announced_run_dir(proc)
        # PostgreSQL dies under gunicorn's first step (an immediate shutdown: the postmaster and
        # every backend exit at once, as in a crash, but its shared memory is released).
        _into_step(run_dir, "raw/gunicorn/r1/u4", proc)
        _every_child_carries_the_run_marker(proc.pid, run_dir)
        manifest = json.loads((run_dir / "manifest.json").read_text())
        pid_file = Path(manifest["resolved"]["postgres_data_dir"]) / "postmaster.pid"
        os.kill(int(pid_file.read_text().split()[0]), signal.SIGQUIT)
        # uvicorn is killed outright during its first step.
        _into_step(run_dir, "raw/uvicorn/r1/u4", proc)
        _child_running(proc.pid, "uvicorn").kill()
        _out, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err[-3000:]

    with (run_dir / "steps.csv").open() as fh:
        rows = {(r["server"], r["users"]): r for r in csv.DictReader(fh)}
    assert sorted(rows) == [("gunicorn", "4"), ("hypercorn", "4"), ("hypercorn", "8"),
                            ("uvicorn", "4")]  # fmt: skip
    assert rows[("gunicorn", "4")]["status"] == "failed"
    assert "PostgreSQL exited with code" in rows[("gunicorn", "4")]["invalid_reason"]
    assert rows[("uvicorn", "4")]["status"] == "failed"
    assert "uvicorn exited with code -9" in rows[("uvicorn", "4")]["invalid_reason"]
    assert all(rows[("hypercorn", u)]["status"] == "ok" for u in ("4", "8"))

    manifest = json.loads((run_dir / "manifest.json").read_text())
    servers = manifest["servers"]
    assert servers["gunicorn"]["status"] == "failed"
    assert "PostgreSQL exited" in servers["gunicorn"]["error"]
    assert "immediate shutdown" in servers["gunicorn"]["log_tail"]  # PostgreSQL's own log
    assert servers["uvicorn"]["status"] == "failed" and servers["hypercorn"]["status"] == "complete"
    assert [p["name"] for p in manifest["phases"]].count("migrate+seed") == 2  # a fresh cluster
    assert "starting a fresh cluster" in err
    assert manifest["status"] == "failed" and "gunicorn, uvicorn" in manifest["error"]
    assert_nothing_left(str(run_dir))
