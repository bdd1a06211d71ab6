"""Read and merge the per-process records a Locust step wrote (see loadtests/recording.py)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gatewaybench.analysis.histogram import Histogram
from gatewaybench.analysis.series import value_at
from gatewaybench.errors import StackError
from gatewaybench.results.schema import schema_problem

TASK_KEY = "__task__"  # must match loadtests.recording.TASK_KEY
THINK_KEY = "__think__"  # must match loadtests.recording.THINK_KEY
PSEUDO_KEYS = (TASK_KEY, THINK_KEY)  # not requests: iterations, and think times
UPLOAD_KEY = "POST /polls/upload/ (slow)"  # must match loadtests.slowupload.UPLOAD_NAME
CONTROL_ROLES = ("local", "master")  # processes whose timeline defines the step
# The record files' schema versions this code reads (loadtests.recording.SCHEMA_VERSION writes).
RECORD_VERSIONS = range(1, 2)


@dataclass
class ProcessRecord:
    role: str
    pid: int
    events: dict[str, float]
    votes: Counter[str]
    cpu: list[tuple[float, float]]
    seconds: dict[int, dict[str, dict[str, Any]]]
    # The open model's (loadtests/recording.py): latencies from the intended start by second of
    # completion, like `seconds`; arrivals offered and dropped, and the generator's dispatch
    # lag, by second of intended arrival. Empty in a closed-model record.
    intended: dict[int, dict[str, dict[str, Any]]] = field(default_factory=dict)
    arrivals: dict[int, dict[str, int]] = field(default_factory=dict)
    lag: dict[int, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProcessRecord:
        return cls(
            role=str(data["role"]),
            pid=int(data["pid"]),
            events={k: float(v) for k, v in data.get("events", {}).items()},
            votes=Counter({k: int(v) for k, v in data.get("votes", {}).items()}),
            cpu=[(float(t), float(c)) for t, c in data.get("cpu", [])],
            seconds={int(s): names for s, names in data.get("seconds", {}).items()},
            intended={int(s): names for s, names in data.get("intended", {}).items()},
            arrivals={int(s): counts for s, counts in data.get("arrivals", {}).items()},
            lag={int(s): bucket for s, bucket in data.get("lag", {}).items()},
        )

    def cpu_at(self, t: float) -> float:
        """CPU seconds used by time t, interpolated between samples."""
        return value_at(self.cpu, t)

    @property
    def generates_load(self) -> bool:
        return self.role != "master"


@dataclass
class StepRecords:
    processes: list[ProcessRecord] = field(default_factory=list)

    @property
    def control(self) -> ProcessRecord | None:
        for p in self.processes:
            if p.role in CONTROL_ROLES:
                return p
        return None

    def votes(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for p in self.processes:
            total.update(p.votes)
        return total

    def window_histogram(
        self, start: int, end: int, names: Callable[[str], bool] = lambda _: True
    ) -> Histogram:
        """Latencies of requests completed in seconds [start, end), over the request names
        `names` selects (default: all)."""
        hist = Histogram()
        for p in self.processes:
            for second, per_name in p.seconds.items():
                if not start <= second < end:
                    continue
                for name, bucket in per_name.items():
                    if name in PSEUDO_KEYS or not names(name):
                        continue
                    hist.merge(Histogram.from_json(bucket.get("hist", {})))
        return hist

    def window_intended_histogram(self, start: int, end: int) -> Histogram:
        """The open model's latencies from each request's intended start, of the requests
        completed in seconds [start, end) (the same requests as window_histogram's)."""
        hist = Histogram()
        for p in self.processes:
            for second, per_name in p.intended.items():
                if start <= second < end:
                    for name, bucket in per_name.items():
                        if name not in PSEUDO_KEYS:
                            hist.merge(Histogram.from_json(bucket.get("hist", {})))
        return hist

    def window_arrivals(self, start: int, end: int) -> tuple[int, int]:
        """The open model's arrivals meant for seconds [start, end), and how many of them were
        dropped (sessions in flight at the cap)."""
        arrivals = dropped = 0
        for p in self.processes:
            for second, counts in p.arrivals.items():
                if start <= second < end:
                    arrivals += int(counts.get("arrivals", 0))
                    dropped += int(counts.get("dropped", 0))
        return arrivals, dropped

    def window_lag_histogram(self, start: int, end: int) -> Histogram:
        """How late the generator dispatched the arrivals meant for seconds [start, end)."""
        hist = Histogram()
        for p in self.processes:
            for second, bucket in p.lag.items():
                if start <= second < end:
                    hist.merge(Histogram.from_json(bucket.get("hist", {})))
        return hist

    def busy_seconds(self, start: int, end: int) -> float:
        """Request-seconds spent inside [start, end): each request's [completion - latency,
        completion] clipped to the window, with completion taken at the middle of its second.
        Requests that began before the window or ended after it count only their part inside,
        so a step whose queue is still settling (latencies of seconds) is measured truly."""
        return self._seconds_inside(start, end, lambda name: name not in PSEUDO_KEYS, -1)

    def think_seconds(self, start: int, end: int) -> float:
        """User-seconds spent thinking inside [start, end): each think time recorded at the
        second it began, clipped to the window like busy_seconds."""
        return self._seconds_inside(start, end, lambda name: name == THINK_KEY, +1)

    @property
    def has_think_times(self) -> bool:
        """Records made before think times were recorded (or by another locustfile) lack them."""
        return any(THINK_KEY in names for p in self.processes for names in p.seconds.values())

    def _seconds_inside(
        self, start: int, end: int, names: Callable[[str], bool], direction: int
    ) -> float:
        """Sum of the intervals' parts inside [start, end). Each histogram entry is an interval
        of that length that ended (direction -1) or began (+1) in the middle of its second."""
        total = 0.0
        for p in self.processes:
            for second, per_name in p.seconds.items():
                anchor = second + 0.5
                for name, bucket in per_name.items():
                    if not names(name):
                        continue
                    for us, count in bucket.get("hist", {}).items():
                        other = anchor + direction * int(us) / 1e6
                        low, high = min(anchor, other), max(anchor, other)
                        total += max(0.0, min(high, end) - max(low, start)) * int(count)
        return total

    def window_counts(self, start: int, end: int) -> dict[str, Counter[str]]:
        """Per request name (and TASK_KEY): count and failures in seconds [start, end)."""
        out: dict[str, Counter[str]] = {}
        for p in self.processes:
            for second, per_name in p.seconds.items():
                if start <= second < end:
                    for name, bucket in per_name.items():
                        c = out.setdefault(name, Counter())
                        c["count"] += int(bucket.get("count", 0))
                        c["failures"] += int(bucket.get("failures", 0))
        return out

    def window_errors(self, start: int, end: int) -> Counter[str]:
        """Failure messages of requests completed in seconds [start, end)."""
        total: Counter[str] = Counter()
        for p in self.processes:
            for second, per_name in p.seconds.items():
                if start <= second < end:
                    for bucket in per_name.values():
                        total.update({str(k): int(v) for k, v in bucket.get("errors", {}).items()})
        return total


def read_step_records(directory: Path) -> StepRecords:
    """All complete record files of a step; a missing directory yields an empty result. A record
    of a schema version this code does not read is refused (StackError), never misread."""
    records = StepRecords()
    for path in sorted(directory.glob("record-*.json")):
        data = json.loads(path.read_text())
        problem = schema_problem(str(path), data, RECORD_VERSIONS)
        if problem is not None:
            raise StackError(problem, "run the load generator (loadtests/) of this gatewaybench")
        records.processes.append(ProcessRecord.from_json(data))
    return records
