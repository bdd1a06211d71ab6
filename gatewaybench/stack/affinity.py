"""CPU affinity of a running process tree: pin it to cores, and read back where it may run.

The gate's duet trials can pin each side's app server (or whole side) to a core of its own
(`gate --pin`, after Bulej et al., "Duet Benchmarking", ICPE 2020; gate/duet.py says why it is
not the default). Affinity is set per task (thread), because sched_setaffinity on a pid sets
only that thread; threads and processes created later inherit it from their creator, so a
gunicorn master pinned with its workers respawns pinned workers.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from gatewaybench.stack.procstat import children_of, iter_stats, subtree


def usable_cpus() -> tuple[int, ...]:
    """The cores this process may run on, in order (a container or taskset may give fewer)."""
    return tuple(sorted(os.sched_getaffinity(0)))


def tree_pids(root: int) -> list[int]:
    """The root and every live descendant, as /proc shows them now."""
    return subtree(children_of(st for st in iter_stats() if st.live), root)


def _tasks(pid: int) -> list[int]:
    try:
        return [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return []  # gone since it was listed


def pin_tree(root: int, cpus: Iterable[int]) -> int:
    """Every thread of `root` and its descendants may run only on `cpus`; returns how many
    threads were pinned (a thread that ended meanwhile is skipped)."""
    wanted = set(cpus)
    pinned = 0
    for pid in tree_pids(root):
        for tid in _tasks(pid):
            try:
                os.sched_setaffinity(tid, wanted)
            except ProcessLookupError:
                continue
            pinned += 1
    return pinned


def tree_affinity(root: int) -> set[int]:
    """The union of the cores every thread of the tree may run on (what was observed, read
    back from the kernel, not what was asked for)."""
    found: set[int] = set()
    for pid in tree_pids(root):
        for tid in _tasks(pid):
            try:
                found |= os.sched_getaffinity(tid)
            except ProcessLookupError:
                continue
    return found


@contextmanager
def this_thread_on(cpus: set[int] | None) -> Iterator[None]:
    """The calling thread only (pid 0 is the caller's thread) runs on `cpus` meanwhile, and so
    does every process it starts (a child inherits its launching thread's affinity); None:
    unchanged."""
    if cpus is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)
