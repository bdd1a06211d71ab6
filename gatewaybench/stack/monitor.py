"""Resource sampling of the stack's components, by process tree, straight from /proc.

A component is the process we started and everything below it: "the app server" is its master
and all its workers, "postgres" is the postmaster and every backend. A sample sums CPU time
over the live members plus the CPU of children they already reaped (short-lived PostgreSQL
backends under CONN_MAX_AGE=0 would otherwise vanish between samples). One read of
/proc/<pid>/stat per process a second, from a thread of the harness (psutil reads three files
per process): some 40 us of CPU per process on the machine, per sample (2.6 ms with 74
processes; tests/unit/test_procstat.py holds it under 200 us per process).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

from gatewaybench.stack.procstat import ProcStat, children_of, iter_stats, subtree

SAMPLE_INTERVAL_S = 1.0
SAMPLE_FIELDS = ("t", "cpu_s", "rss_bytes", "threads", "processes", "db_clients")


@dataclass
class Sample:
    t: float
    cpu_s: float = 0.0
    rss_bytes: int = 0
    threads: int = 0
    processes: int = 0
    db_clients: int = 0  # postgres only: backends serving the app's database

    def to_json(self) -> list[Any]:
        return [
            round(self.t, 3),
            round(self.cpu_s, 4),
            self.rss_bytes,
            self.threads,
            self.processes,
            self.db_clients,
        ]


def is_db_client(title: str, database: str) -> bool:
    """Backends retitle themselves 'postgres: <user> <database> <host(port)> <state>'."""
    parts = title.split()
    return len(parts) >= 3 and parts[0] == "postgres:" and parts[2] == database


def all_stats() -> dict[int, ProcStat]:
    return {st.pid: st for st in iter_stats()}


def _owners(stats: dict[int, ProcStat], leaders: Mapping[str, int]) -> dict[int, str]:
    """pid -> component, for each leader and everything below it (procstat.subtree)."""
    children = children_of(stats.values())
    return {
        pid: name
        for name, leader in leaders.items()
        if leader in stats
        for pid in subtree(children, leader)
    }


def _title(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def sample_groups(leaders: Mapping[str, int], database: str | None) -> dict[str, Sample]:
    now = time.time()
    stats = all_stats()
    out = {name: Sample(now) for name in leaders}
    for pid, name in _owners(stats, leaders).items():
        st, s = stats[pid], out[name]
        s.cpu_s += st.cpu_s
        s.rss_bytes += st.rss_bytes
        s.threads += st.threads
        s.processes += 1
        if name == "postgres" and database:
            s.db_clients += is_db_client(_title(pid), database)
    return out


class Monitor:
    """Samples a stack's components once a second, in a thread, until stopped, plus a last sample
    at the stop: one step's resources.json. The local and the container backends differ only in
    what one sample reads (`sample`)."""

    thread_name = "resource-monitor"
    join_timeout_s = 10.0

    def __init__(self) -> None:
        self.samples: dict[str, list[Sample]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> Mapping[str, Sample]:
        """One sample per component, now."""
        raise NotImplementedError

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.join_timeout_s)
        self._take()  # a last sample at the very end of the step
        return {
            "fields": list(SAMPLE_FIELDS),
            "components": {n: [s.to_json() for s in v] for n, v in self.samples.items()},
        }

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._take()
            self._stop.wait(SAMPLE_INTERVAL_S)

    def _take(self) -> None:
        for name, sample in self.sample().items():
            self.samples.setdefault(name, []).append(sample)


class ResourceMonitor(Monitor):
    """Named process groups, from /proc."""

    def __init__(self, groups: Mapping[str, int], database: str | None = None) -> None:
        super().__init__()
        self.groups = groups  # component -> the pid of the process we started
        self.database = database

    def sample(self) -> Mapping[str, Sample]:
        return sample_groups(self.groups, self.database)
