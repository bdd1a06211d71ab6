"""Supervised children (gatewaybench.stack.process): tied to the harness even when started from
a thread while other threads run, and a missing executable refused at start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gatewaybench.errors import StackError
from gatewaybench.stack import process
from gatewaybench.stack.procstat import read_stat

# A harness stand-in: it starts `sleep` from a second thread while a third one spins (as the
# duet's step threads and samplers do), prints the child's pid, then waits to be killed.
PARENT = """
import sys, threading, time
from pathlib import Path
from gatewaybench.stack import process

spin = threading.Thread(target=lambda: [time.sleep(0.001) for _ in range(100000)], daemon=True)
spin.start()


def starter():
    child = process.start("sleeper", ["sleep", "60"], log_path=Path(sys.argv[1]))
    print(child.pid, flush=True)
    time.sleep(60)  # a step's thread outlives its Locust: the child is tied to this thread


threading.Thread(target=starter, daemon=True).start()
time.sleep(60)
"""


def _gone(pid: int, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        st = read_stat(pid)
        if st is None or not st.live:
            return True
        time.sleep(0.05)
    return False


def test_a_child_started_from_a_thread_dies_with_its_sigkilled_parent(tmp_path: Path) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(tmp_path / "sleep.log")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    try:
        assert not _gone(child, within_s=0.5)  # started, and running while its parent runs
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        assert _gone(child, within_s=10), "the child outlived its SIGKILLed parent"
    finally:
        if not _gone(child, within_s=0):
            os.kill(child, signal.SIGKILL)


def test_the_child_runs_the_command_itself(tmp_path: Path) -> None:
    proc = process.start("echo", ["sh", "-c", "echo $$"], log_path=tmp_path / "echo.log")
    assert proc.popen.wait(timeout=10) == 0
    assert (tmp_path / "echo.log").read_text().strip() == str(proc.pid)  # setpriv exec'd it


def test_a_missing_executable_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(StackError, match=r"could not start ghost .*no such executable"):
        process.start("ghost", [str(tmp_path / "nope")], log_path=tmp_path / "ghost.log")
    with pytest.raises(StackError, match="no such executable"):
        process.start("ghost", ["gatewaybench-no-such-tool"], log_path=tmp_path / "g.log")
