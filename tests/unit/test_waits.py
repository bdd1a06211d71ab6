"""The upstream wait dimension: cells and labels, the physics checks, the in-window busy time."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from gatewaybench.analysis.records import ProcessRecord, StepRecords
from gatewaybench.analysis.waits import (
    AppCalls,
    UpstreamEntry,
    Wait,
    app_calls,
    bound_problem,
    check_upstream,
    parse_upstream_access,
)
from gatewaybench.config import build_spec
from gatewaybench.matrix import Cell, blocking_slots, effective, in_flight_text
from gatewaybench.spec import parse_cells, parse_waits


def test_a_wait_is_part_of_the_label_and_the_variant_is_the_label_without_it() -> None:
    cell = Cell("uvicorn", "async", "pool", upstream_ms=100)
    assert cell.label == "uvicorn+async+pool@100ms"
    assert cell.variant == "uvicorn+async+pool"
    assert Cell("gunicorn", upstream_ms=0).label == "gunicorn@0ms"
    assert Cell("gunicorn").label == "gunicorn"  # no wait dimension: today's label
    assert Cell("gunicorn", request_buffering=False).label == "gunicorn+unbuffered"


def test_labels_parse_back_into_the_same_cells() -> None:
    cells = (Cell("uvicorn", "async", "pool", upstream_ms=20), Cell("gunicorn", upstream_ms=0))
    assert parse_cells(",".join(c.label for c in cells)) == cells
    unbuffered = Cell("gunicorn-gthread", request_buffering=False, upstream_ms=5)
    assert parse_cells(unbuffered.label) == (unbuffered,)


def test_waits_cross_the_cells_wait_by_wait() -> None:
    spec = build_spec({"servers": ("gunicorn", "uvicorn"), "upstream_ms": parse_waits("0,50")})
    assert [c.label for c in spec.cells] == [
        "gunicorn@0ms", "uvicorn@0ms", "gunicorn@50ms", "uvicorn@50ms"
    ]  # fmt: skip
    assert spec.waits == (0, 50)
    assert spec.max_wait_s == pytest.approx(0.05)


def test_buffering_crosses_the_cells_side_by_side() -> None:
    spec = build_spec({"servers": ("gunicorn",), "request_buffering": (True, False)})
    assert [c.label for c in spec.cells] == ["gunicorn", "gunicorn+unbuffered"]


def test_the_io_preset_is_five_cells_at_four_waits_calibrated() -> None:
    spec = build_spec({"preset": "io"})
    assert spec.waits == (0, 20, 100, 300)
    assert len(spec.cells) == 20
    assert spec.load.users == () and spec.load.auto_steps == 4 and spec.load.window_s == 6
    assert {c.variant for c in spec.cells} == {
        "gunicorn", "gunicorn-gthread", "gunicorn-gevent", "uvicorn", "uvicorn+async+pool"
    }  # fmt: skip
    # a flag still wins over the preset
    assert build_spec({"preset": "io", "upstream_ms": (0, 50)}).waits == (0, 50)


def test_in_flight_and_the_blocking_slots_follow_the_server() -> None:
    from gatewaybench.matrix import Budget

    budget = Budget(2, 8)
    for cell, text, slots in (
        (Cell("gunicorn"), "2 x 1 = 2", 2),
        (Cell("gunicorn-gthread"), "2 x 8 = 16", 16),
        (Cell("gunicorn-gevent"), "event loop: 2 x 1000 greenlets", None),
        (Cell("uvicorn", "async", "pool"), "event loop", None),
        (Cell("uvicorn"), "event loop; sync views: a thread per request", None),
    ):
        eff = effective(cell, budget)
        assert in_flight_text(cell, eff) == text
        assert blocking_slots(cell, eff) == slots


def test_the_blocking_bound_flags_a_step_above_it_by_more_than_5_pct() -> None:
    wait = Wait(upstream_ms=100, calls=1, db_wait_ms=0, blocking_slots=1)
    assert wait.bound_rps() == pytest.approx(10.0)
    assert bound_problem(10.4, wait) == ""
    assert "exceeds the blocking bound 10.0" in bound_problem(10.6, wait)
    two_calls = Wait(upstream_ms=100, calls=2, db_wait_ms=0, blocking_slots=4)
    assert two_calls.bound_rps() == pytest.approx(20.0)
    assert math.isnan(Wait(100, 1, 0, None).bound_rps())  # an event loop: no such bound
    assert bound_problem(1e6, Wait(100, 1, 0, None)) == ""
    assert math.isnan(Wait(0, 1, 0, 4).bound_rps())  # no wait, no bound


def _entries(n: int, ms: float, t0: float = 100.0) -> list[UpstreamEntry]:
    return [UpstreamEntry(t0 + i * 0.01, 200, ms, f"{ms / 1000:.3f}") for i in range(n)]


def test_the_upstream_agrees_when_its_median_is_the_configured_delay() -> None:
    wait = Wait(100, 1, 0, None)
    check = check_upstream(_entries(300, 101.0), 100, 110, wait, AppCalls(300, 0))
    assert check.p50_ok and check.text == "agrees" and check.requests == 300


def test_a_late_upstream_is_flagged() -> None:
    check = check_upstream(_entries(300, 109.0), 100, 110, Wait(100, 1, 0, None), AppCalls(300, 0))
    assert not check.p50_ok
    assert "upstream p50 109 ms vs 100 ms configured" in check.text


def test_over_the_whole_step_the_count_must_match_the_apps_calls() -> None:
    wait = Wait(100, 2, 0, None)
    assert check_upstream(_entries(600, 100.0), 100, 110, wait, AppCalls(600, 0)).text == "agrees"
    # calls for requests nginx gave up on may or may not have been made
    assert check_upstream(_entries(610, 100.0), 100, 110, wait, AppCalls(600, 10)).text == "agrees"
    check = check_upstream(_entries(500, 100.0), 100, 110, wait, AppCalls(600, 0))
    assert check.p50_ok  # shown, but the wait itself was right
    assert "upstream saw 500 calls vs 600 the app made" in check.text
    over = check_upstream(_entries(620, 100.0), 100, 110, wait, AppCalls(600, 10))
    assert "upstream saw 620 calls vs 600 (+10 for requests given up on)" in over.text


def test_without_the_fronts_log_the_count_is_not_judged() -> None:
    check = check_upstream(_entries(500, 100.0), 100, 110, Wait(100, 1, 0, None), None)
    assert check.text == "agrees" and check.requests == 500


def test_app_calls_leave_out_what_nginx_answered_itself() -> None:
    assert app_calls([200, 302, 500, 502, 503, 504, 499, 404], calls=2) == AppCalls(8, 4)


def test_the_upstream_access_log_parses_and_skips_cut_lines() -> None:
    text = "1796307405.347 200 0.100 0.1\nbroken\n1796307405.409 400 0.000 abc\n"
    entries = parse_upstream_access(text)
    assert [(e.status, e.request_time_ms) for e in entries] == [(200, 100.0), (400, 0.0)]


def _record(seconds: dict[int, dict[int, int]]) -> StepRecords:
    """One process; per second a histogram of latencies (us -> count) under one name."""
    data = {s: {"GET /x": {"hist": {str(us): c for us, c in h.items()}}} for s, h in
            seconds.items()}  # fmt: skip
    return StepRecords([ProcessRecord("local", 1, {}, Counter(), [], data)])


def test_busy_seconds_count_only_the_part_inside_the_window() -> None:
    # Ends at 10.5 after 8 s: began at 2.5, inside [5, 15) for 5.5 s. Ends at 20.5 after 10 s:
    # began at 10.5, inside for 4.5 s. Ends at 3.5: before the window, nothing.
    records = _record({10: {8_000_000: 1}, 20: {10_000_000: 1}, 3: {500_000: 1}})
    assert records.busy_seconds(5, 15) == pytest.approx(10.0)
    # short requests well inside count whole: 40 x 0.1 s
    assert _record({7: {100_000: 40}}).busy_seconds(5, 15) == pytest.approx(4.0)
