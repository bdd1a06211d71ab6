from __future__ import annotations

import pytest

from gatewaybench.analysis.step import StepRow
from gatewaybench.load import calibrate
from gatewaybench.spec import Thresholds


def probe(users: int, held: bool) -> calibrate.Probe:
    return calibrate.Probe(users, 1.0, 1.0, 0.0, held, "")


def test_probe_levels_double_up_to_the_cap() -> None:
    assert calibrate.probe_levels() == [10, 20, 40, 80, 160, 320, 640, 1280]


def test_knee_is_the_last_held_level_before_the_first_failure() -> None:
    assert calibrate.knee([probe(10, True), probe(20, True), probe(40, False)]) == 20
    assert calibrate.knee([probe(10, False)]) == 0
    assert calibrate.knee([probe(10, True), probe(20, False), probe(40, True)]) == 10


@pytest.mark.parametrize("knees", [[20], [20, 320], [0, 40], [0], [1280, 1280], [5, 640]])
def test_steps_bracket_every_knee(knees: list[int]) -> None:
    steps = calibrate.choose_steps(knees)
    assert list(steps) == sorted(set(steps)) and steps[0] >= calibrate.MIN_USERS
    for knee in knees:
        # Each knee lies between the last held probe and the next (twice it): some step is at
        # or below the held level and some step is at or beyond where it failed.
        assert steps[0] <= max(knee, calibrate.MIN_USERS)
        assert steps[-1] >= 2 * knee or steps[-1] >= calibrate.PROBE_START


def test_judge_uses_the_capacity_test() -> None:
    limits = Thresholds(slo_ms=100, fail_pct=1)
    row = StepRow("g", "wsgi", 10, valid=True, p95_ms=50, fail_pct=0.5)
    assert calibrate.judge(row, limits).held
    assert "p95" in calibrate.judge(StepRow("g", "wsgi", 10, valid=True, p95_ms=150), limits).reason
    failed = calibrate.judge(StepRow("g", "wsgi", 10, valid=True, fail_pct=3), limits)
    assert not failed.held and "3.0% failed" in failed.reason
    invalid = StepRow("g", "wsgi", 10, valid=False, invalid_reason="load generator saturated")
    assert calibrate.judge(invalid, limits).reason == "load generator saturated"
