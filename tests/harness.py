"""The harness CLI as the end-to-end tests run it: `python -m gatewaybench` in a child process,
started from the checkout as a user starts it, and the run directory it reports."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from tests.conftest import REPO, assert_nothing_left

STOP_GRACE_S = 60  # a harness told to stop tears its whole stack down first
ANNOUNCEMENT = "gatewaybench: run directory "  # its first line on stderr once the run begins


class Finished(NamedTuple):
    code: int
    stdout: str
    stderr: str


@contextmanager
def start(
    command: str, *args: str, reports: Path, env: Mapping[str, str] | None = None
) -> Iterator[subprocess.Popen[str]]:
    """`gatewaybench COMMAND --reports-dir REPORTS ARGS` running, with its output piped and `env`
    over ours. In a process group of its own, so a harness the test left running (a failed
    assertion) is stopped with whatever it started in that group and no signal meant for pytest
    reaches it; with no terminal input, so nothing in that background group can stop on a read."""
    argv = [sys.executable, "-m", "gatewaybench", command, "--reports-dir", str(reports), *args]
    with subprocess.Popen(
        argv, cwd=REPO, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, process_group=0,
    ) as proc:  # fmt: skip
        try:
            yield proc
        finally:
            if proc.poll() is None:
                _stop(proc)


def _stop(proc: subprocess.Popen[str]) -> None:
    """SIGTERM (the harness tears down its stack), SIGKILL if it has not ended in time; its
    output is drained meanwhile so that it cannot block writing it."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.communicate(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()


def run(
    command: str,
    *args: str,
    reports: Path,
    timeout_s: float,
    env: Mapping[str, str] | None = None,
) -> Finished:
    """`gatewaybench COMMAND ...` run to its end; past `timeout_s` it is stopped and
    subprocess.TimeoutExpired raised."""
    with start(command, *args, reports=reports, env=env) as proc:
        out, err = proc.communicate(timeout=timeout_s)
    return Finished(proc.returncode, out, err)


def run_dir_of(stdout: str) -> Path:
    """The run (or gate) directory: the last line a finished or interrupted harness prints."""
    return Path(stdout.strip().splitlines()[-1])


def announced_run_dir(proc: subprocess.Popen[str]) -> Path:
    """The run directory, as soon as the running harness announces it on stderr (the lines read
    here are not in what communicate() returns later)."""
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith(ANNOUNCEMENT):
            return Path(line.removeprefix(ANNOUNCEMENT).strip())
    raise AssertionError("no run directory announced")


def wait_for_path(
    root: Path,
    pattern: str,
    proc: subprocess.Popen[str],
    timeout_s: float,
    *,
    ready: Callable[[Path], bool] = Path.exists,
    poll_s: float = 0.2,
) -> Path:
    """The first path under `root` matching the glob `pattern` that is `ready`, while the harness
    `proc` runs: its ending first (its stderr shown) or the deadline fails the test."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = [p for p in sorted(root.glob(pattern)) if ready(p)]
        if found:
            return found[0]
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        time.sleep(poll_s)
    raise AssertionError(f"no {pattern} under {root} after {timeout_s} s")


@dataclass(frozen=True)
class Bench:
    """A finished `gatewaybench run`: its run directory, steps.csv rows, stderr and stdout."""

    run_dir: Path
    rows: list[dict[str, str]]
    stderr: str
    stdout: str = ""


def step_rows(run_dir: Path) -> list[dict[str, str]]:
    """The rows of a run's steps.csv."""
    with (run_dir / "steps.csv").open() as fh:
        return list(csv.DictReader(fh))


def run_bench(reports: Path, *args: str, timeout_s: float = 600) -> Bench:
    """`gatewaybench run ARGS`, which must succeed and leave nothing running; its stderr is shown
    when it does not."""
    out = run("run", *args, reports=reports, timeout_s=timeout_s)
    assert out.code == 0, out.stderr[-4000:]
    run_dir = run_dir_of(out.stdout)
    rows = step_rows(run_dir)
    assert_nothing_left(str(run_dir))
    return Bench(run_dir, rows, out.stderr, out.stdout)
