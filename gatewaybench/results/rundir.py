"""`reports/<UTC timestamp>-<label>/`: manifest.json, steps.csv, raw/, logs/ — never overwritten.

Every file is rewritten atomically as soon as what it describes has happened, so a crash or a
kill at any moment leaves a directory that tells the truth about what finished.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gatewaybench.analysis.failures import FAILURE_COLUMNS, FailureRow
from gatewaybench.analysis.resources import RESOURCE_COLUMNS, ResourceRow
from gatewaybench.analysis.step import STEP_COLUMNS, StepRow
from gatewaybench.errors import UsageError
from gatewaybench.results.files import write_csv, write_json
from gatewaybench.results.schema import MANIFEST, SCHEMA_VERSION

STEPS_CSV = "steps.csv"
FAILURES_CSV = "failures.csv"
RESOURCES_CSV = "resources.csv"
LATEST = "latest"


def utc_stamp(now: dt.datetime | None = None) -> str:
    return (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")


def create_run_dir(reports_dir: Path, run_label: str, now: dt.datetime | None = None) -> Path:
    """A new directory; an existing one (same second, same run label) gets a numeric suffix."""
    try:
        reports_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"reports directory {reports_dir} cannot be created: {exc.strerror}",
            "pass --reports-dir with a writable directory",
        ) from None
    if not os.access(reports_dir, os.W_OK | os.X_OK):
        raise UsageError(
            f"reports directory {reports_dir} is not writable",
            "pass --reports-dir with a writable directory",
        )
    base = f"{utc_stamp(now)}-{run_label}"
    for attempt in range(1, 1000):
        path = reports_dir / (base if attempt == 1 else f"{base}-{attempt}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        for sub in ("raw", "logs", "steps", "conf"):
            (path / sub).mkdir()
        return path
    raise UsageError(f"too many runs named {base}", "use another --label")


def point_latest(run_dir: Path) -> None:
    """reports/latest -> this run, swapped atomically so readers never see it missing."""
    link = run_dir.parent / LATEST
    tmp = run_dir.parent / f".{LATEST}.{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(run_dir.name)
    os.replace(tmp, link)


@dataclass
class RunRecorder:
    """Owns the run directory's result files while a run is in progress."""

    path: Path
    manifest: dict[str, Any]
    rows: list[StepRow] = field(default_factory=list)
    failures: list[FailureRow] = field(default_factory=list)
    resources: list[ResourceRow] = field(default_factory=list)

    @classmethod
    def start(cls, path: Path, manifest: dict[str, Any]) -> RunRecorder:
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "run_id": path.name,
            "status": "running",
            "started_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "phases": [],
            "servers": {},
            **manifest,
        }
        rec = cls(path, manifest)
        rec.save_manifest()
        write_csv(path / STEPS_CSV, STEP_COLUMNS, [])
        write_csv(path / FAILURES_CSV, FAILURE_COLUMNS, [])
        write_csv(path / RESOURCES_CSV, RESOURCE_COLUMNS, [])
        point_latest(path)
        return rec

    def save_manifest(self) -> None:
        write_json(self.path / MANIFEST, self.manifest)

    def add_step(
        self,
        row: StepRow,
        failures: list[FailureRow] | None = None,
        resources: list[ResourceRow] | None = None,
    ) -> None:
        """Persist one finished step: its row, its failures and its resource figures."""
        self.rows.append(row)
        name = f"{row.server}-r{row.repeat}-{row.level_tag}.json"
        write_json(self.path / "steps" / name, row.to_json())
        write_csv(self.path / STEPS_CSV, STEP_COLUMNS, (r.to_json() for r in self.rows))
        if failures:
            self.failures += failures
            write_csv(
                self.path / FAILURES_CSV, FAILURE_COLUMNS, (f.to_json() for f in self.failures)
            )
        if resources:
            self.resources += resources
            write_csv(
                self.path / RESOURCES_CSV, RESOURCE_COLUMNS, (r.to_json() for r in self.resources)
            )

    def set_server(self, server: str, **facts: Any) -> None:
        self.manifest["servers"].setdefault(server, {}).update(facts)
        self.save_manifest()

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        entry: dict[str, Any] = {"name": name, "started_utc": _now_iso()}
        self.manifest["phases"].append(entry)
        t0 = time.monotonic()
        try:
            yield
        finally:
            entry["seconds"] = round(time.monotonic() - t0, 3)
            self.save_manifest()

    def finish(self, status: str, error: str | None = None) -> None:
        self.manifest["status"] = status
        self.manifest["finished_utc"] = _now_iso()
        if error:
            self.manifest["error"] = error
        self.save_manifest()


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
