"""`--users auto`: real probes on a real stack choose the steps the matrix then runs."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from gatewaybench.load import calibrate
from tests.conftest import REPO, assert_nothing_left

pytestmark = pytest.mark.e2e


def test_users_auto_probes_then_runs_steps_bracketing_the_knee(tmp_path: Path) -> None:
    # A tight SLO puts the knee at a few dozen users, so the probes stay short here.
    argv = [
        sys.executable, "-m", "gatewaybench", "run", "--servers", "gunicorn",
        "--users", "auto", "--slo-ms", "20", "--ramp", "1", "--warmup", "1", "--window", "2",
        "--workers", "2", "--reports-dir", str(tmp_path), "--label", "auto",
    ]  # fmt: skip
    out = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    run_dir = Path(out.stdout.strip().splitlines()[-1])
    manifest = json.loads((run_dir / "manifest.json").read_text())
    probes = manifest["calibration"]["gunicorn"]["probes"]
    knee = manifest["calibration"]["gunicorn"]["knee_users"]
    assert [p["users"] for p in probes] == calibrate.probe_levels()[: len(probes)]
    assert not probes[-1]["held"] or len(probes) == len(calibrate.probe_levels())
    assert knee == calibrate.knee([calibrate.Probe(**p) for p in probes])
    steps = manifest["resolved"]["users"]
    assert steps == list(calibrate.choose_steps([knee]))
    with (run_dir / "steps.csv").open() as fh:
        assert [int(r["users"]) for r in csv.DictReader(fh)] == steps
    assert "calibrated steps:" in out.stderr
    assert_nothing_left(str(run_dir))
