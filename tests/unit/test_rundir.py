from __future__ import annotations

import csv
import datetime as dt
import json
import os
from pathlib import Path

import pytest

from gatewaybench.analysis.step import STEP_COLUMNS, StepRow
from gatewaybench.errors import UsageError
from gatewaybench.results.rundir import RunRecorder, create_run_dir

NOW = dt.datetime(2026, 11, 21, 3, 4, 5, tzinfo=dt.UTC)


def test_run_dirs_are_never_overwritten(tmp_path: Path) -> None:
    first = create_run_dir(tmp_path, "bench", NOW)
    second = create_run_dir(tmp_path, "bench", NOW)
    assert first.name == "20261121T030405Z-bench"
    assert second.name == "20261121T030405Z-bench-2"
    assert {p.name for p in first.iterdir()} == {"raw", "logs", "steps", "conf"}


def test_unwritable_reports_dir_is_a_usage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UsageError, match="cannot be created"):
        create_run_dir(blocker / "reports", "bench", NOW)


def test_recorder_writes_rows_as_they_come_and_points_latest(tmp_path: Path) -> None:
    run_dir = create_run_dir(tmp_path, "x", NOW)
    rec = RunRecorder.start(run_dir, {"label": "x"})
    assert (tmp_path / "latest").resolve() == run_dir.resolve()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "running" and manifest["schema_version"] == 1
    rec.add_step(StepRow("gunicorn", "wsgi", 10, requests=5, rps=0.5, valid=True))
    rec.add_step(StepRow("gunicorn", "wsgi", 20, requests=7, rps=0.7))
    with (run_dir / "steps.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["users"] for r in rows] == ["10", "20"]
    assert list(rows[0]) == list(STEP_COLUMNS)
    assert rows[0]["fail_pct"] == ""  # NaN is written as an empty cell, never as a number
    assert (run_dir / "steps" / "gunicorn-r1-u20.json").is_file()
    assert (run_dir / "failures.csv").is_file() and (run_dir / "resources.csv").is_file()
    with rec.phase("postgres"):
        pass
    rec.finish("complete")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["phases"][0]["name"] == "postgres" and "seconds" in manifest["phases"][0]
    assert not [p for p in run_dir.rglob(".*.tmp")], "temporary files left behind"
    assert os.readlink(tmp_path / "latest") == run_dir.name  # relative: the tree can move


def test_a_log_past_its_cap_keeps_its_tail_and_writers_carry_on(tmp_path: Path) -> None:
    from gatewaybench.stack.logs import cap_log

    path = tmp_path / "app.log"
    with path.open("ab", buffering=0) as writer:  # as a child's stdout: O_APPEND
        writer.write(b"old line\n" * 1000)
        assert cap_log(path, max_bytes=100_000, keep_bytes=90) == 0  # under the cap: untouched
        dropped = cap_log(path, max_bytes=1000, keep_bytes=90)
        assert dropped == 9000 - 90
        writer.write(b"new line\n")
    text = path.read_text()
    assert text.startswith(f"[gatewaybench: {dropped} earlier bytes dropped at the log cap]\n")
    assert text.endswith("old line\n" * 10 + "new line\n")
    assert len(text.encode()) < 200
