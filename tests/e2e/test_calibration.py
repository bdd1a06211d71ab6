"""`--users auto`: real probes on a real stack choose the steps the matrix then runs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from gatewaybench.load import knee_search
from tests.conftest import assert_nothing_left
from tests.harness import run, run_bench, run_dir_of

pytestmark = pytest.mark.e2e


def test_users_auto_probes_then_runs_steps_bracketing_the_knee(tmp_path: Path) -> None:
    # A tight SLO puts the knee near 10 users (one user's p95 is 15-25 ms here, 40 users' over
    # 50), so the search stays short; two steps show the run takes the steps it chose.
    out = run(
        "run", "--servers", "gunicorn",
        "--users", "auto", "--auto-steps", "2", "--slo-ms", "40",
        "--ramp", "1", "--warmup", "1", "--window", "2",
        "--workers", "2", "--label", "auto", reports=tmp_path, timeout_s=600,
    )  # fmt: skip
    assert out.code == 0, out.stderr[-3000:]
    run_dir = run_dir_of(out.stdout)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    probes = manifest["calibration"]["gunicorn"]["probes"]
    knee = manifest["calibration"]["gunicorn"]["knee_users"]
    _assert_searched(probes, knee_search.PROBE_START)
    assert knee == knee_search.knee([knee_search.Probe(**p) for p in probes])
    steps = manifest["resolved"]["users"]
    assert steps == list(knee_search.choose_steps([knee], 2))
    with (run_dir / "steps.csv").open() as fh:
        assert [int(r["users"]) for r in csv.DictReader(fh)] == steps
    assert "calibrated steps:" in out.stderr
    assert_nothing_left(str(run_dir))


def _assert_searched(probes: list[dict[str, object]], start: int) -> None:
    """The probes are the search's own sequence from `start`, and it ended at the knee."""
    seen: list[knee_search.Probe] = []
    for p in probes:
        assert knee_search.next_level(seen, start) == p["level"], (seen, p)
        seen.append(knee_search.Probe(**p))  # type: ignore[arg-type]
    assert knee_search.next_level(seen, start) is None


def test_with_waits_each_cell_gets_steps_around_its_own_knee(tmp_path: Path) -> None:
    # Few probes, knees apart: without the wait the search stops at 20 or 40 users (80 take
    # several times the SLO); with it, the search from there stops at 10 or below (two sync
    # workers waiting 50 ms per request serve at most 40 req/s, far less than 40 users ask).
    run = run_bench(
        tmp_path, "--cells", "gunicorn",
        "--upstream-ms", "0,50", "--users", "auto", "--auto-steps", "3", "--slo-ms", "200",
        "--ramp", "1", "--warmup", "1", "--window", "2", "--workers", "2",
    )  # fmt: skip
    manifest = json.loads((run.run_dir / "manifest.json").read_text())
    calibration = manifest["calibration"]
    first, second = calibration["gunicorn@0ms"], calibration["gunicorn@50ms"]
    _assert_searched(first["probes"], knee_search.PROBE_START)
    # the second wait's search starts where the first wait's knee was
    _assert_searched(second["probes"], first["knee_users"] or knee_search.PROBE_START)
    by_cell = manifest["resolved"]["users_by_cell"]
    for label, entry in calibration.items():
        steps = list(knee_search.bracket_steps(entry["knee_users"], 3))
        # the steps around the knee, and lower ones only while the lowest run did not hold
        assert by_cell[label][-3:] == steps and all(u < steps[0] for u in by_cell[label][:-3])
        ran = [int(r["users"]) for r in run.rows if r["server"] == label]
        assert ran[:3] == steps and sorted(ran) == by_cell[label]
