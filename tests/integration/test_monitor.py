"""The resource monitor on real processes: CPU of a whole group, reaped children included."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from gatewaybench.analysis.resources import resource_rows
from gatewaybench.stack import process
from gatewaybench.stack.monitor import ResourceMonitor, is_db_client

BUSY_CHILDREN = (
    "import subprocess, sys, time\n"
    "burn = 'import time\\nt=time.time()\\nwhile time.time()-t<0.4: pass'\n"
    "deadline = time.time() + 2.5\n"
    "while time.time() < deadline:\n"
    "    subprocess.run([sys.executable, '-c', burn])  # short-lived, reaped by us\n"
    "time.sleep(30)\n"
)


def test_group_cpu_includes_short_lived_children(tmp_path: Path) -> None:
    proc = process.start("busy", [sys.executable, "-c", BUSY_CHILDREN], log_path=tmp_path / "b")
    try:
        monitor = ResourceMonitor({"busy": proc.pid}).start()
        start = time.time()
        time.sleep(3.5)
        data = monitor.stop()
        end = time.time()
    finally:
        proc.stop(timeout_s=2)
    (row,) = resource_rows(data, server="s", repeat=1, users=1, start=start, end=end)
    # ~2.5 s of busy children in ~3.5 s; each child lived < 1 sampling interval.
    assert 40 <= row.cpu_pct <= 100, row
    assert row.peak_processes >= 1 and row.peak_rss_mb > 1


def test_db_client_titles() -> None:
    assert is_db_client("postgres: polls polls 127.0.0.1(5555) idle", "polls")
    assert not is_db_client("postgres: gatewaybench postgres 127.0.0.1(5) idle", "polls")
    assert not is_db_client("postgres: checkpointer", "polls")
