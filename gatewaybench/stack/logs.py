"""Slices of growing log files: what each component wrote during one step."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

MAX_SLICE_BYTES = 32 * 2**20  # evidence, not archives: a runaway log is read up to this


@dataclass(frozen=True)
class LogMark:
    offsets: Mapping[Path, int]

    @classmethod
    def now(cls, paths: list[Path]) -> LogMark:
        return cls({p: p.stat().st_size if p.exists() else 0 for p in paths})

    def since(self, path: Path) -> str:
        """Text appended to `path` after this mark ('' if the file is gone)."""
        try:
            with path.open("rb") as fh:
                fh.seek(self.offsets.get(path, 0))
                return fh.read(MAX_SLICE_BYTES).decode("utf-8", "replace")
        except OSError:
            return ""


LOG_CAP_BYTES = 64 * 2**20  # per component log: disk use stays bounded under error storms
LOG_KEEP_BYTES = 2**20  # what a capped log keeps: its most recent tail


def cap_log(path: Path, max_bytes: int = LOG_CAP_BYTES, keep_bytes: int = LOG_KEEP_BYTES) -> int:
    """Shrink a log that grew past max_bytes to its last keep_bytes, behind a marker line.

    Called between steps, after the step's slice has been analysed, so no evidence a step's
    figures need is lost; the writers hold the file with O_APPEND and simply carry on at the
    new end. Returns the bytes dropped (0: under the cap)."""
    try:
        size = path.stat().st_size
    except OSError:
        return 0
    if size <= max_bytes:
        return 0
    with path.open("r+b") as fh:
        fh.seek(size - keep_bytes)
        tail = fh.read(keep_bytes)
        fh.seek(0)
        fh.truncate()
        dropped = size - len(tail)
        fh.write(f"[gatewaybench: {dropped} earlier bytes dropped at the log cap]\n".encode())
        fh.write(tail)
    return dropped
