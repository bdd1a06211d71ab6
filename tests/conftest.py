"""Shared helpers: leftover detection for tests that start real processes, golden files.
(Starting the harness itself: tests/harness.py.)"""

from __future__ import annotations

import os
import time
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parents[1]


def descendants() -> list[psutil.Process]:
    """Live (non-zombie) processes below this test process."""
    alive = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
        except psutil.NoSuchProcess:
            continue
    return alive


def processes_mentioning(text: str) -> list[psutil.Process]:
    """Live processes whose command line or environment mentions `text` (e.g. a run directory:
    the harness exports GATEWAYBENCH_RUN_DIR to every child, even those whose argv is opaque)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE or proc.pid == os.getpid():
                continue
            cmdline = " ".join(proc.info["cmdline"] or [])
            if text in cmdline or any(text in v for v in proc.environ().values()):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def listening_ports() -> set[int]:
    return {c.laddr.port for c in psutil.net_connections("inet") if c.status == psutil.CONN_LISTEN}


def assert_nothing_left(marker: str, grace_s: float = 5.0, *, children: bool = True) -> None:
    """No process mentioning `marker` survives, nor (with `children`) any process we started."""
    deadline = time.monotonic() + grace_s
    while True:
        left = (descendants() if children else []) + processes_mentioning(marker)
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not left, "left running: " + "; ".join(
        f"{p.pid} {' '.join(p.cmdline())[:120]}" for p in left
    )


@pytest.fixture
def repo() -> Path:
    return REPO


GOLDEN = Path(__file__).resolve().parent / "golden"


def check_golden(name: str, text: str) -> None:
    """Compare with tests/golden/NAME byte for byte; GATEWAYBENCH_UPDATE_GOLDEN=1 rewrites it."""
    path = GOLDEN / name
    if os.environ.get("GATEWAYBENCH_UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.is_file(), f"no golden file {path}; run with GATEWAYBENCH_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{name} differs from its golden file"
