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
