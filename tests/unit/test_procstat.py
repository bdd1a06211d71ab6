"""/proc/<pid>/stat parsing (gatewaybench.stack.procstat), shared by the monitor and teardown."""

from __future__ import annotations

import os
import statistics
import time

from gatewaybench.stack import monitor, process
from gatewaybench.stack.procstat import (
    CLOCK_TICKS,
    PAGE_SIZE,
    children_of,
    parse_stat,
    read_stat,
    subtree,
)

# A stat line as the kernel writes it (proc(5)), for a process named "a) b (c": the name keeps
# its spaces and parentheses. utime..cstime = 100 + 50 + 7 + 3 ticks, 4 threads, 250 pages.
LINE = ("4242 (a) b (c) S 17 4240 4240 0 -1 4194560 500 0 0 0 100 50 7 3 20 0 4 0 123 "
        "104857600 250 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n")  # fmt: skip


def test_a_command_name_with_spaces_and_parentheses() -> None:
    st = parse_stat(LINE)
    assert (st.pid, st.state, st.ppid, st.pgrp, st.threads) == (4242, "S", 17, 4240, 4)
    assert st.cpu_s == 160 / CLOCK_TICKS
    assert st.rss_bytes == 250 * PAGE_SIZE
    assert st.live


def test_zombies_are_not_live() -> None:
    assert not parse_stat(LINE.replace(") S 17", ") Z 17")).live


def test_this_process_reads_as_itself() -> None:
    st = read_stat(os.getpid())
    assert st is not None and st.pid == os.getpid() and st.ppid == os.getppid()
    assert st.pgrp == os.getpgrp() and st.live and st.threads >= 1 and st.rss_bytes > 0
    assert read_stat(2**22 + 1) is None  # above pid_max's ceiling: never a process


def test_monitor_and_teardown_read_the_same_stats() -> None:
    assert os.getpid() in monitor.all_stats()
    assert process.group_alive(os.getpgrp())


def test_a_sample_costs_little_cpu_per_process() -> None:
    """monitor.py's docstring: some 40 us of CPU per process listed in /proc, per sample."""
    costs = []
    for _ in range(5):
        processes = sum(1 for entry in os.listdir("/proc") if entry.isdigit())
        start = time.process_time()
        monitor.sample_groups({"me": os.getpid()}, None)
        costs.append((time.process_time() - start) / processes)
    assert statistics.median(costs) < 200e-6


def test_a_subtree_follows_parentage_not_process_groups() -> None:
    # 1 -> 10 -> 11 (in another group, as a PostgreSQL backend after setsid) -> 12; 20 apart.
    def stat(pid: int, ppid: int, pgrp: int) -> str:
        return LINE.replace("4242 (a) b (c) S 17 4240", f"{pid} (x) S {ppid} {pgrp}")

    stats = [parse_stat(stat(*t)) for t in ((10, 1, 10), (11, 10, 11), (12, 11, 11), (20, 1, 20))]
    children = children_of(stats)
    assert sorted(subtree(children, 10)) == [10, 11, 12]
    assert subtree(children, 12) == [12]
    assert sorted(subtree(children, 1)) == [1, 10, 11, 12, 20]
