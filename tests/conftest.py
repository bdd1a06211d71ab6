"""Shared helpers: leftover detection for tests that start real processes."""

from __future__ import annotations

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
    """Any process on the machine whose command line mentions `text` (e.g. a run directory)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or [])
            if text in cmdline and proc.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.NoSuchProcess:
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
