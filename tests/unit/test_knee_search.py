from __future__ import annotations

import pytest

from gatewaybench.analysis.step import StepRow
from gatewaybench.load import knee_search
from gatewaybench.spec import Thresholds


def probe(users: int, held: bool) -> knee_search.Probe:
    return knee_search.Probe(users, 1.0, 1.0, 0.0, held, "")


def test_probe_levels_double_up_to_the_cap() -> None:
    held: list[knee_search.Probe] = []
    while (users := knee_search.next_level(held)) is not None:
        held.append(probe(users, True))
    assert [p.level for p in held] == [10, 20, 40, 80, 160, 320, 640, 1280]


def test_the_search_doubles_while_held_and_halves_when_the_first_fails() -> None:
    assert knee_search.next_level([]) == 10
    assert knee_search.next_level([], start=40) == 40
    assert knee_search.next_level([probe(40, True)]) == 80
    assert knee_search.next_level([probe(40, True), probe(80, False)]) is None
    assert knee_search.next_level([probe(640, True), probe(1280, True)]) is None  # the cap
    assert knee_search.next_level([probe(40, False)]) == 20
    assert knee_search.next_level([probe(40, False), probe(20, False)]) == 10
    assert knee_search.next_level([probe(40, False), probe(20, True)]) is None
    assert knee_search.next_level([probe(2, False), probe(1, False)]) is None  # nothing holds
    assert knee_search.knee([probe(40, False), probe(20, False), probe(10, True)]) == 10
    assert knee_search.knee([probe(2, False), probe(1, False)]) == 0


@pytest.mark.parametrize("knee", [0, 1, 5, 10, 20, 160, 1280])
def test_a_cells_steps_sit_around_its_own_knee(knee: int) -> None:
    steps = knee_search.bracket_steps(knee, 3)
    assert list(steps) == sorted(set(steps)) and steps[0] >= 1
    # from the level the probe held to the one it did not
    assert steps[0] == pytest.approx(max(knee, 1), rel=0.03)  # two digits: 1280 -> 1300
    assert steps[-1] == pytest.approx(2 * max(knee, 1), rel=0.03)
    if knee >= 10:  # a factor sqrt(2) apart, rounded to two digits
        assert len(steps) == 3 and steps[-1] / steps[0] == pytest.approx(2, rel=0.1)
    assert knee_search.bracket_steps(20, 3) == (20, 28, 40)
    assert knee_search.bracket_steps(20, 4) == (14, 20, 28, 40)


def test_the_step_below_is_a_factor_sqrt2_lower_down_to_one_user() -> None:
    assert [knee_search.step_below(u) for u in (80, 57, 10, 2, 1)] == [57, 40, 7, 1, None]


def test_knee_is_the_last_held_level_before_the_first_failure() -> None:
    assert knee_search.knee([probe(10, True), probe(20, True), probe(40, False)]) == 20
    assert knee_search.knee([probe(10, False)]) == 0
    assert knee_search.knee([probe(10, True), probe(20, False), probe(40, True)]) == 10


@pytest.mark.parametrize("knees", [[20], [20, 320], [0, 40], [0], [1280, 1280], [5, 640]])
def test_steps_bracket_every_knee(knees: list[int]) -> None:
    steps = knee_search.choose_steps(knees)
    assert list(steps) == sorted(set(steps)) and steps[0] >= knee_search.MIN_USERS
    for knee in knees:
        # Each knee lies between the last held probe and the next (twice it): some step is at
        # or below the held level and some step is at or beyond where it failed.
        assert steps[0] <= max(knee, knee_search.MIN_USERS)
        assert steps[-1] >= 2 * knee or steps[-1] >= knee_search.PROBE_START


def test_judge_uses_the_capacity_test() -> None:
    limits = Thresholds(slo_ms=100, fail_pct=1)
    row = StepRow("g", "wsgi", 10, valid=True, p95_ms=50, fail_pct=0.5)
    assert knee_search.judge(row, limits).held
    slow = StepRow("g", "wsgi", 10, valid=True, p95_ms=150, fail_pct=0)
    assert "p95" in knee_search.judge(slow, limits).reason
    failed = knee_search.judge(StepRow("g", "wsgi", 10, valid=True, fail_pct=3), limits)
    assert not failed.held and "3.0 % of requests failed" in failed.reason
    invalid = StepRow("g", "wsgi", 10, valid=False, invalid_reason="load generator saturated")
    assert "load generator saturated" in knee_search.judge(invalid, limits).reason
