"""Where a long run is, on stderr: cell i/N, step j/M, time elapsed and an estimate of the rest.

On a terminal, one line redrawn in place (rich); elsewhere (CI, a pipe, a file) a plain
`progress: ...` line at most every PLAIN_INTERVAL_S. Never on stdout, which carries the tables,
the report and the run directory. The plan is known up front (cells x repeats x steps, each
step ramp + warm-up + window long) except for `--users auto`, whose steps are known only once
calibrated: until then there is no estimate rather than a wrong one.

Updates come from the run's events (a cell, a step) and, while a step's load runs, from a
ticker thread. The ticker runs only then, beside the resource monitor's sampler: the harness
starts child processes only while no such thread runs (gatewaybench/stack/process.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.text import Text

MODES = ("auto", "rich", "plain", "off")
PLAIN_INTERVAL_S = 10.0  # a CI log gets a line this often at most
TICK_S = 1.0  # how often the ticker redraws (a plain line is still rate-limited)
JOIN_S = 5.0

Clock = Callable[[], float]


def choose_mode(requested: str, *, terminal: bool, ci: bool) -> str:
    """`auto`: redrawn in place on a terminal outside CI, plain lines otherwise."""
    if requested != "auto":
        return requested
    return "rich" if terminal and not ci else "plain"


@dataclass(frozen=True)
class Unit:
    """One cell as the run meets it (a cell again in each repeat)."""

    name: str  # as shown: "gunicorn", "gunicorn (repeat 2)"
    cell: str  # the cell's label, whose step count it has


@dataclass
class Tracker:
    """The plan and what has run of it; pure arithmetic on the times it is given."""

    units: list[Unit]
    steps: dict[str, int | None]  # cell label -> planned steps (None: not known yet)
    step_s: float  # a step's planned length: ramp + warm-up + window
    started: float
    noun: str = "cell"
    phase: str = "starting"  # shown while no unit runs (e.g. "calibrating")
    current: int = -1  # index of the unit running or last run
    started_steps: list[int] = field(default_factory=list)  # per unit
    finished: set[int] = field(default_factory=set)  # units that will run no more steps
    done: int = 0  # steps finished, all units
    level: str = ""  # the current step's: "300 users", "20 arrivals/s"
    first_step_at: float | None = None
    last_step_end: float | None = None
    step_at: float | None = None  # the running step's start; None between steps

    def __post_init__(self) -> None:
        self.started_steps = [0] * len(self.units)

    def add_units(self, units: Sequence[Unit]) -> None:
        self.units += units
        self.started_steps += [0] * len(units)

    def unit_started(self) -> None:
        self.current += 1
        self.phase = ""

    def unit_finished(self) -> None:
        """Its steps not run (a failed cell) leave the plan."""
        self.finished.add(self.current)
        self.step_at = None

    def step_started(self, level: str, now: float) -> None:
        self.started_steps[self.current] += 1
        self.level, self.step_at = level, now
        if self.first_step_at is None:
            self.first_step_at = now

    def step_finished(self, now: float) -> None:
        self.done += 1
        self.last_step_end, self.step_at = now, None

    def planned(self, index: int) -> int | None:
        ran = self.started_steps[index]
        if index in self.finished:
            return ran
        count = self.steps.get(self.units[index].cell)
        return None if count is None else max(count, ran)

    def remaining_steps(self) -> int | None:
        """Steps not finished yet, the running one included; None while any is unknown."""
        counts = [self.planned(i) for i in range(len(self.units))]
        if any(c is None for c in counts):
            return None
        return sum(c for c in counts if c is not None) - self.done

    def step_time_s(self) -> float:
        """The plan's step length until a step has run; then what steps really took, from the
        first step's start to the last one's end (cell start-ups and analysis included)."""
        if self.done == 0 or self.first_step_at is None or self.last_step_end is None:
            return self.step_s
        return (self.last_step_end - self.first_step_at) / self.done

    def eta_s(self, now: float) -> float | None:
        remaining = self.remaining_steps()
        if remaining is None:
            return None
        per_step = self.step_time_s()
        into_step = 0.0 if self.step_at is None else min(now - self.step_at, per_step)
        return max(0.0, remaining * per_step - into_step)

    def fraction(self, now: float) -> float | None:
        eta = self.eta_s(now)
        elapsed = now - self.started
        return None if eta is None or elapsed + eta <= 0 else elapsed / (elapsed + eta)

    def describe(self, now: float) -> str:
        """e.g. `cell 2/4 gunicorn, step 3/7 (300 users), 12:04 elapsed, ~6 min left`."""
        parts = [self.phase] if self.phase or self.current < 0 else self._where()
        parts.append(f"{clock_text(now - self.started)} elapsed")
        eta = self.eta_s(now)
        parts.append("no estimate yet" if eta is None else left_text(eta))
        return ", ".join(parts)

    def _where(self) -> list[str]:
        index = self.current
        planned = self.planned(index)
        where = [f"{self.noun} {index + 1}/{len(self.units)} {self.units[index].name}"]
        if self.started_steps[index]:
            total = "?" if planned is None else str(planned)
            where.append(f"step {self.started_steps[index]}/{total} ({self.level})")
        return where


def clock_text(seconds: float) -> str:
    """12:04, or 1:02:04 from an hour on."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def left_text(seconds: float) -> str:
    if seconds < 60:
        return "<1 min left"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"~{minutes} min left"
    return f"~{minutes // 60} h {minutes % 60:02d} min left"


@dataclass
class RateLimit:
    """True at most once per interval: the first call, then once the interval has passed."""

    interval_s: float
    last: float | None = None

    def due(self, now: float) -> bool:
        if self.last is not None and now - self.last < self.interval_s:
            return False
        self.last = now
        return True


class Display(Protocol):
    live: bool  # redraws over time (worth a ticker)

    def start(self) -> None: ...

    def update(self, tracker: Tracker, now: float) -> None: ...

    def say(self, message: str) -> None: ...

    def stop(self) -> None: ...


@dataclass
class NoDisplay:
    """Messages only, as before there was progress."""

    stream: TextIO
    live: bool = False

    def start(self) -> None:
        pass

    def update(self, tracker: Tracker, now: float) -> None:
        pass

    def say(self, message: str) -> None:
        print(message, file=self.stream, flush=True)

    def stop(self) -> None:
        pass


@dataclass
class PlainDisplay(NoDisplay):
    """A `progress: ...` line at most every interval, between the run's own messages."""

    limit: RateLimit = field(default_factory=lambda: RateLimit(PLAIN_INTERVAL_S))
    live: bool = True

    def update(self, tracker: Tracker, now: float) -> None:
        if self.limit.due(now):
            self.say(f"progress: {tracker.describe(now)}")


@dataclass
class RichDisplay:
    """One line and a bar redrawn in place below the run's messages; gone when it stops."""

    stream: TextIO
    live: bool = True
    _live: Live | None = None

    def start(self) -> None:
        # Only stderr is ours: stdout stays the tables, report and run directory.
        console = Console(file=self.stream, force_terminal=True, highlight=False)
        self._live = Live(console=console, auto_refresh=False, transient=True,
                          redirect_stdout=False, redirect_stderr=True)  # fmt: skip
        self._live.start()

    def update(self, tracker: Tracker, now: float) -> None:
        if self._live is None:
            return
        fraction = tracker.fraction(now)
        bar = ProgressBar(total=None if fraction is None else 1.0, completed=fraction or 0.0,
                          width=40)  # fmt: skip
        self._live.update(Group(Text(tracker.describe(now)), bar), refresh=True)

    def say(self, message: str) -> None:
        if self._live is None:
            print(message, file=self.stream, flush=True)
            return
        self._live.console.print(message, markup=False, emoji=False, soft_wrap=True)

    def stop(self) -> None:
        live, self._live = self._live, None
        if live is not None:
            live.stop()  # restores the cursor; transient: the line is erased


def make_display(mode: str, stream: TextIO) -> Display:
    if mode == "rich":
        return RichDisplay(stream)
    if mode == "plain":
        return PlainDisplay(stream)
    return NoDisplay(stream)


class Progress:
    """The run's events in, the display out. Events come from the main thread, redraws from
    the ticker too: one lock keeps a redraw and a message from interleaving."""

    def __init__(self, display: Display, clock: Clock = time.monotonic) -> None:
        self.display = display
        self.clock = clock
        self.tracker: Tracker | None = None
        # Reentrant: a signal's exception between acquiring and entering a `with` cannot
        # leave the main thread locked out of its own teardown messages.
        self._lock = threading.RLock()

    @classmethod
    def create(cls, mode: str, stream: TextIO) -> Progress:
        return cls(make_display(mode, stream))

    def plan(
        self,
        units: Sequence[Unit],
        steps: Mapping[str, int | None],
        step_s: float,
        noun: str = "cell",
    ) -> None:
        with self._lock:
            self.tracker = Tracker(list(units), dict(steps), step_s, self.clock(), noun)
        self._show()

    def say(self, message: str) -> None:
        with self._lock:
            self.display.say(message)

    def phase(self, text: str) -> None:
        self._event(lambda t: setattr(t, "phase", text))

    def set_steps(self, cell: str, count: int) -> None:
        self._event(lambda t: t.steps.__setitem__(cell, count))

    def add_units(self, units: Sequence[Unit]) -> None:
        self._event(lambda t: t.add_units(units))

    def unit_started(self) -> None:
        self._event(Tracker.unit_started)

    def unit_finished(self) -> None:
        self._event(Tracker.unit_finished)

    def step_started(self, level: str) -> None:
        """`level`: where the step sits, for people ("300 users", "20 arrivals/s")."""
        now = self.clock()
        self._event(lambda t: t.step_started(level, now))

    def step_finished(self) -> None:
        now = self.clock()
        self._event(lambda t: t.step_finished(now))

    def _event(self, change: Callable[[Tracker], object]) -> None:
        with self._lock:
            if self.tracker is not None:
                change(self.tracker)
        self._show()

    def _show(self, wait_s: float = -1) -> None:
        if not self._lock.acquire(timeout=wait_s):
            return
        try:
            if self.tracker is not None:
                self.display.update(self.tracker, self.clock())
        finally:
            self._lock.release()

    @contextmanager
    def shown(self) -> Iterator[None]:
        """The display for the body's length, stopped however it ends (a signal too)."""
        self.display.start()
        try:
            self._show()  # the plan as it stands, before the first event
            yield
        finally:
            with self._lock:
                self.display.stop()

    @contextmanager
    def ticking(self) -> Iterator[None]:
        """Redraws every TICK_S while a step's load runs (no child process starts meanwhile)."""
        if not self.display.live:
            yield
            return
        stop = threading.Event()
        ticker = threading.Thread(
            target=self._tick, args=(stop,), name="gatewaybench-progress", daemon=True
        )
        ticker.start()
        try:
            yield
        finally:
            stop.set()
            ticker.join(JOIN_S)

    def _tick(self, stop: threading.Event) -> None:
        while not stop.wait(TICK_S):
            try:
                self._show(wait_s=TICK_S)  # never stuck behind a lock the main thread holds
            except (OSError, ValueError):  # stderr closed (a pipe's reader gone): stop quietly
                return
