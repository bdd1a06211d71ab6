"""Per-second recording of every request a Locust process makes, each latency kept to 3
significant digits in HdrHistogram's sense (see bucket_us for the exact bound).

Locust's own stats round response times to ~2 significant figures and its percentiles are
cumulative or a trailing window, so they cannot give per-step truth. Each Locust process
(local, master or worker) keeps its own record keyed by the wall-clock second in which a request
*completed*; the harness picks the steady-state window afterwards from the timeline, so no
process has to agree with another on when the window starts. Records are plain JSON, merged by
addition, so steps, worker processes and runs can be combined later.

The open model (loadtests/openmodel.py) adds, only to its own records, keys older readers
ignore: "open_model" (its settings), "intended" (each request's latency from its intended start,
laid out like "seconds"; failures counted, messages only in "seconds"), "arrivals" (per second
of intended arrival: arrivals offered and dropped) and "lag" (per second of intended arrival: a
histogram of the generator's dispatch lag, actual - intended, dropped arrivals included).

This module must not import locust: it is unit-tested without gevent's monkey-patching.
"""

from __future__ import annotations

import json
import math
import os
import resource
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
TASK_KEY = "__task__"  # pseudo request name counting finished user iterations (for Little's law)
# Pseudo request name whose histogram holds think times, keyed by the second they began: with
# the requests' own times, what every user did in the window is measured, not estimated.
THINK_KEY = "__think__"
MAX_ERROR_TEXT = 200


# HdrHistogram's layout at 3 significant digits: 2048 sub-buckets per power of two, so that no
# bucket is wider than 1/1024 of the values in it. Below EXACT_US every microsecond is a bucket.
SUB_BUCKETS = 2048
EXACT_US = SUB_BUCKETS


def bucket_us(value_ms: float) -> int:
    """A latency's recorded value, in whole microseconds: the midpoint of its HdrHistogram
    bucket at 3 significant digits (below EXACT_US, the nearest microsecond).

    Bound: |recorded - true| <= max(true / 2048, 0.5 us). That is at most 0.049 % from
    1.024 ms up and 0.1 % from 0.5 ms up. (HdrHistogram reports a bucket's highest value,
    within 1/1024, about 0.1 %; the midpoint halves that. Whole microseconds keep the on-disk
    form of earlier runs, which rounded to 3 decimal significant digits: within 0.5 %.)
    """
    us = max(0.0, value_ms * 1000)
    if us < EXACT_US:
        return math.floor(us + 0.5)
    whole = int(us)
    width = 1 << (whole.bit_length() - 11)  # 1024 * width <= whole < 2048 * width
    return whole - whole % width + width // 2


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Bucket:
    count: int = 0
    failures: int = 0
    hist: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)  # failure message -> count

    def to_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "failures": self.failures,
            "hist": {str(k): v for k, v in sorted(self.hist.items())},
            "errors": dict(self.errors),
        }


def _per_second_json(seconds: dict[int, dict[str, Bucket]]) -> dict[str, Any]:
    return {
        str(sec): {name: b.to_json() for name, b in sorted(names.items())}
        for sec, names in sorted(seconds.items())
    }


@dataclass
class Recorder:
    role: str
    seconds: dict[int, dict[str, Bucket]] = field(default_factory=dict)
    events: dict[str, float] = field(default_factory=dict)
    votes: Counter[str] = field(default_factory=Counter)
    cpu: list[tuple[float, float]] = field(default_factory=list)

    # The open model's keys (see the module docstring); None: a closed-model record, whose file
    # stays exactly as before.
    open_model: dict[str, Any] | None = None
    intended: dict[int, dict[str, Bucket]] = field(default_factory=dict)
    arrivals: dict[int, Counter[str]] = field(default_factory=dict)
    lag: dict[int, Bucket] = field(default_factory=dict)

    def _bucket(self, name: str, seconds: dict[int, dict[str, Bucket]] | None = None) -> Bucket:
        # The hot path of every request: plain lookups, no objects built unless new.
        second = int(time.time())
        per_second = self.seconds if seconds is None else seconds
        names = per_second.get(second)
        if names is None:
            names = per_second[second] = {}
        bucket = names.get(name)
        if bucket is None:
            bucket = names[name] = Bucket()
        return bucket

    def request(self, name: str, response_time_ms: float, error: str | None) -> None:
        bucket = self._bucket(name)
        bucket.count += 1
        bucket.hist[bucket_us(response_time_ms)] += 1
        if error is not None:
            bucket.failures += 1
            bucket.errors[error[:MAX_ERROR_TEXT]] += 1

    def intended_request(self, name: str, latency_ms: float, failed: bool) -> None:
        """A request's latency from its intended start (the open model's second histogram)."""
        bucket = self._bucket(name, self.intended)
        bucket.count += 1
        bucket.hist[bucket_us(latency_ms)] += 1
        if failed:
            bucket.failures += 1

    def arrival(self, intended_s: float, lag_ms: float, dropped: bool) -> None:
        """One arrival of the open model, at the second it was meant for (so the offered rate
        per second is the schedule's, however late the generator ran)."""
        second = int(intended_s)
        counts = self.arrivals.get(second)
        if counts is None:
            counts = self.arrivals[second] = Counter()
        counts["arrivals"] += 1
        if dropped:
            counts["dropped"] += 1
        lag = self.lag.get(second)
        if lag is None:
            lag = self.lag[second] = Bucket()
        lag.count += 1
        lag.hist[bucket_us(lag_ms)] += 1

    def task_done(self) -> None:
        self._bucket(TASK_KEY).count += 1

    def think(self, seconds: float) -> None:
        bucket = self._bucket(THINK_KEY)
        bucket.count += 1
        bucket.hist[bucket_us(seconds * 1000)] += 1

    def mark(self, event: str) -> None:
        self.events.setdefault(event, time.time())

    def sample_cpu(self) -> None:
        self.cpu.append((time.time(), cpu_seconds()))

    def to_json(self) -> dict[str, Any]:
        data = self._closed_json()
        if self.open_model is not None:
            data.update(self._open_json())
        return data

    def _closed_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "pid": os.getpid(),
            "role": self.role,
            "events": self.events,
            "votes": dict(self.votes),
            "cpu": self.cpu,
            "seconds": _per_second_json(self.seconds),
        }

    def _open_json(self) -> dict[str, Any]:
        return {
            "open_model": self.open_model,
            "intended": _per_second_json(self.intended),
            "arrivals": {
                str(sec): {"arrivals": c["arrivals"], "dropped": c["dropped"]}
                for sec, c in sorted(self.arrivals.items())
            },
            "lag": {
                str(sec): {"count": b.count, "hist": b.to_json()["hist"]}
                for sec, b in sorted(self.lag.items())
            },
        }

    def write(self, directory: Path) -> Path:
        """Write atomically: a reader never sees half a record, even if we are killed mid-write."""
        directory.mkdir(parents=True, exist_ok=True)
        final = directory / f"record-{self.role}-{os.getpid()}.json"
        tmp = final.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_json(), separators=(",", ":")))
        os.replace(tmp, final)
        return final
