"""One short real gate: base vs a candidate with known extra CPU work, one A B B A block at
fixed loads (no calibration) — too few pairs for a verdict, so exit 3 and every output."""

from __future__ import annotations

import csv
import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, assert_nothing_left

pytestmark = pytest.mark.e2e

SLOWER = REPO / "tests" / "fixtures" / "gate" / "slower.toml"


def test_a_tiny_gate_runs_abba_trials_and_writes_every_output(tmp_path: Path) -> None:
    argv = [
        sys.executable, "-m", "gatewaybench", "gate", "--base", ".", "--cand", str(SLOWER),
        "--blocks", "1", "--no-rerun", "--users", "20,40", "--window", "5", "--warmup", "1",
        "--ramp", "1", "--workers", "2", "--reports-dir", str(tmp_path),
    ]  # fmt: skip
    out = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert out.returncode == 3, out.stdout[-2000:] + out.stderr[-3000:]  # 2 pairs: no verdict
    gate_dir = Path(out.stdout.strip().splitlines()[-1])
    assert "inconclusive" in out.stdout and "more blocks" not in out.stderr

    with (gate_dir / "trials.csv").open() as fh:
        trials = list(csv.DictReader(fh))
    assert [(t["side"], t["position"]) for t in trials] == [
        ("base", "0"),
        ("cand", "1"),
        ("cand", "2"),
        ("base", "3"),
    ]

    def cpu(side: str) -> list[float]:  # a sub-knee step Little's law rejected reads NaN
        values = [float(t["cpu_ms_per_req"]) for t in trials if t["side"] == side]
        return [v for v in values if not math.isnan(v)]

    # 4 ms of CPU work per request on the candidate: plainly visible on the average.
    base_cpu, cand_cpu = cpu("base"), cpu("cand")
    assert base_cpu and cand_cpu, trials
    assert statistics.fmean(cand_cpu) > statistics.fmean(base_cpu) + 2, (base_cpu, cand_cpu)

    junit = (gate_dir / "gate.junit.xml").read_text()
    assert junit.count("<testcase") == 5 and 'name="cpu_ms_per_req"' in junit
    assert junit.count("<skipped") == 2  # the latencies do not decide: "not judged" here
    assert "## gatewaybench gate" in (gate_dir / "summary.md").read_text()
    assert "<h2>Trials</h2>" in (gate_dir / "gate.html").read_text()
    manifest = json.loads((gate_dir / "manifest.json").read_text())
    assert manifest["sides"]["cand"]["django"]["cpu_work_ms"] == 4.0
    assert manifest["sides"]["base"]["django"]["cpu_work_ms"] == 0.0
    with (gate_dir / "steps.csv").open() as fh:
        servers = [r["server"] for r in csv.DictReader(fh)]
    assert servers.count("base:gunicorn") == 4 and servers.count("cand:gunicorn") == 4
    assert_nothing_left(str(gate_dir))


def test_gate_refuses_a_side_it_cannot_resolve(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "gatewaybench", "gate", "--base", ".", "--cand",
            "no-such-ref-anywhere", "--reports-dir", str(tmp_path / "r")]  # fmt: skip
    out = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 2
    assert "is not '.', a .toml file, env:PATH or a git ref" in out.stderr
    assert not (tmp_path / "r").exists()
