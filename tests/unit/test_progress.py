"""The progress display's arithmetic and pacing, on an injected clock: no sleeps, no timing."""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass, field

import pytest

from gatewaybench.errors import Interrupted
from gatewaybench.progress import (
    NoDisplay,
    PlainDisplay,
    Progress,
    RateLimit,
    RichDisplay,
    Tracker,
    Unit,
    choose_mode,
    clock_text,
    left_text,
)

UNITS = [Unit("gunicorn", "gunicorn"), Unit("uvicorn", "uvicorn")]


def tracker(steps: dict[str, int | None] | None = None, step_s: float = 10.0) -> Tracker:
    return Tracker(list(UNITS), steps or {"gunicorn": 3, "uvicorn": 3}, step_s, started=0.0)


def test_before_any_step_the_estimate_is_the_plan() -> None:
    t = tracker()
    assert t.remaining_steps() == 6
    assert t.eta_s(0.0) == 60.0
    assert t.describe(0.0) == "starting, 0:00 elapsed, ~1 min left"


def test_the_running_step_counts_down_but_never_below_the_rest() -> None:
    t = tracker()
    t.unit_started()
    t.step_started("100 users", now=5.0)
    assert t.eta_s(8.0) == 57.0  # 6 steps of 10 s, 3 s into the first
    assert t.eta_s(40.0) == 50.0  # a slow step: at most its planned length is counted done
    assert t.describe(8.0) == "cell 1/2 gunicorn, step 1/3 (100 users), 0:08 elapsed, <1 min left"


def test_measured_steps_correct_the_plan() -> None:
    t = tracker()
    t.unit_started()
    t.step_started("100 users", now=5.0)
    t.step_finished(now=25.0)  # 20 s, not the 10 s planned
    assert t.step_time_s() == 20.0
    assert t.eta_s(25.0) == 5 * 20.0
    t.step_started("200 users", now=27.0)
    t.step_finished(now=45.0)  # from the first step's start: 40 s for 2 steps, gaps included
    assert t.step_time_s() == 20.0
    assert t.eta_s(45.0) == 4 * 20.0


def test_a_failed_cell_takes_its_steps_not_run_out_of_the_plan() -> None:
    t = tracker()
    t.unit_started()
    t.step_started("100 users", now=0.0)
    t.step_finished(now=10.0)
    t.unit_finished()  # failed after 1 of 3 steps
    assert t.remaining_steps() == 3
    t.unit_started()
    assert t.describe(10.0).startswith("cell 2/2 uvicorn, 0:10 elapsed")


def test_unknown_steps_give_no_estimate_until_they_are_known() -> None:
    t = tracker({"gunicorn": None, "uvicorn": None})
    t.phase = "calibrating"
    assert t.eta_s(30.0) is None and t.fraction(30.0) is None
    assert t.describe(30.0) == "calibrating, 0:30 elapsed, no estimate yet"
    t.steps.update(gunicorn=7, uvicorn=7)
    assert t.eta_s(30.0) == 140.0


def test_a_step_added_to_a_running_cell_extends_the_plan() -> None:
    t = tracker({"gunicorn": 1, "uvicorn": 1})
    t.unit_started()
    t.step_started("100 users", now=0.0)
    t.step_finished(now=10.0)
    t.steps["gunicorn"] = 2  # a lower step, to bracket the knee from below
    t.step_started("50 users", now=10.0)
    assert t.remaining_steps() == 2
    assert "step 2/2 (50 users)" in t.describe(12.0)


@pytest.mark.parametrize(
    ("seconds", "clock", "left"),
    [
        (0, "0:00", "<1 min left"),
        (59.9, "0:59", "<1 min left"),
        (724, "12:04", "~12 min left"),
        (3725, "1:02:05", "~62 min left"),
        (5425, "1:30:25", "~1 h 30 min left"),
    ],
)
def test_time_texts(seconds: float, clock: str, left: str) -> None:
    assert clock_text(seconds) == clock
    assert left_text(seconds) == left


def test_a_rate_limit_lets_one_through_per_interval() -> None:
    limit = RateLimit(10.0)
    assert [limit.due(t) for t in (0.0, 3.0, 9.9, 10.0, 12.0, 25.0)] == [
        True, False, False, True, False, True
    ]  # fmt: skip


@dataclass
class FakeClock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now


def test_plain_lines_come_at_most_every_interval_between_messages() -> None:
    stream, clock = io.StringIO(), FakeClock()
    progress = Progress(PlainDisplay(stream), clock)
    progress.plan(UNITS, {"gunicorn": 2, "uvicorn": 2}, 10.0)  # t=0: a line
    clock.now = 3.0
    progress.unit_started()
    progress.step_started("100 users")  # too soon for another
    progress.say("[gunicorn] starting")  # messages are never held back
    clock.now = 33.0
    progress.step_finished()  # due again: 30 s a step, measured, for the 3 left
    clock.now = 35.0
    progress.step_started("200 users")
    assert stream.getvalue().splitlines() == [
        "progress: starting, 0:00 elapsed, <1 min left",
        "[gunicorn] starting",
        "progress: cell 1/2 gunicorn, step 1/2 (100 users), 0:33 elapsed, ~2 min left",
    ]


def test_off_shows_messages_only_and_ticks_no_thread() -> None:
    stream = io.StringIO()
    progress = Progress(NoDisplay(stream), FakeClock())
    progress.plan(UNITS, {"gunicorn": 1, "uvicorn": 1}, 10.0)
    threads = threading.active_count()
    with progress.ticking():
        assert threading.active_count() == threads
    progress.say("hello")
    assert stream.getvalue() == "hello\n"


@dataclass
class RecordingDisplay(NoDisplay):
    calls: list[str] = field(default_factory=list)

    def start(self) -> None:
        self.calls.append("start")

    def stop(self) -> None:
        self.calls.append("stop")


@pytest.mark.parametrize("error", [Interrupted(2), RuntimeError("boom")])
def test_the_display_stops_however_the_run_ends(error: BaseException) -> None:
    display = RecordingDisplay(io.StringIO())
    progress = Progress(display, FakeClock())
    with pytest.raises(type(error)), progress.shown():
        raise error
    assert display.calls == ["start", "stop"]


def test_rich_draws_on_its_stream_and_gives_the_cursor_back() -> None:
    stream = io.StringIO()
    progress = Progress(RichDisplay(stream), FakeClock(30.0))
    with progress.shown():
        progress.plan(UNITS, {"gunicorn": 2, "uvicorn": 2}, 10.0)
        progress.say("[gunicorn] 100 users: 50.0 req/s")  # brackets are text, not markup
    text = stream.getvalue()
    assert "[gunicorn] 100 users: 50.0 req/s" in text
    assert "starting, 0:00 elapsed" in text
    assert text.rindex("\x1b[?25h") > text.rindex("\x1b[?25l")  # the cursor is back at the end


@pytest.mark.parametrize(
    ("requested", "terminal", "ci", "mode"),
    [
        ("auto", True, False, "rich"),
        ("auto", True, True, "plain"),
        ("auto", False, False, "plain"),
        ("plain", True, False, "plain"),
        ("rich", False, True, "rich"),
        ("off", True, False, "off"),
    ],
)
def test_auto_is_rich_only_on_a_terminal_outside_ci(
    requested: str, terminal: bool, ci: bool, mode: str
) -> None:
    assert choose_mode(requested, terminal=terminal, ci=ci) == mode
