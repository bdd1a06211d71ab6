"""Repeats (servers interleaved, mean ± CI) and Locust's own master/worker processes, for real."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, assert_nothing_left

pytestmark = pytest.mark.e2e


def test_repeat_with_two_locust_processes(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "gatewaybench", "run", "--servers", "daphne,gunicorn",
         "--users", "4", "--ramp", "1", "--warmup", "1", "--window", "3", "--repeat", "2",
         "--processes", "2", "--reports-dir", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = Path(proc.stdout.strip().splitlines()[-1])
    with (run_dir / "steps.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    # interleaved: daphne, gunicorn, daphne, gunicorn
    assert [(r["server"], r["repeat"]) for r in rows] == [
        ("daphne", "1"), ("gunicorn", "1"), ("daphne", "2"), ("gunicorn", "2"),
    ]  # fmt: skip
    for row in rows:
        assert row["gen_processes"] == "2", row  # two workers recorded, merged by the harness
        assert int(row["requests"]) > 0 and row["status"] == "ok"
        step_dir = run_dir / "raw" / row["server"] / f"r{row['repeat']}" / "u4"
        assert len(list(step_dir.glob("record-worker-*.json"))) == 2
    assert "mean of 2 repeats" in proc.stdout
    assert "Capacity" in proc.stdout
    assert_nothing_left(str(run_dir))
