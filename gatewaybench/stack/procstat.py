"""/proc/<pid>/stat, parsed in one place: the resource monitor and process-group teardown
both read it (psutil would read three files per process where one will do)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class ProcStat:
    """The fields of /proc/<pid>/stat we use (proc(5) numbers them from 1)."""

    pid: int  # 1
    state: str  # 3: R, S, D, ... Z (zombie), X (dead)
    ppid: int  # 4
    pgrp: int  # 5
    cpu_s: float  # 14-17: utime + stime + cutime + cstime (reaped children included)
    threads: int  # 20
    rss_bytes: int  # 24, in pages

    @property
    def live(self) -> bool:
        """Running or able to run: a zombie or a dead entry is only waiting to be reaped."""
        return self.state not in ("Z", "X")


def parse_stat(raw: str) -> ProcStat:
    """One stat line. The command name (field 2) is in parentheses and may itself contain
    spaces and parentheses, so the fields after it are counted from the LAST ')'."""
    close = raw.rindex(")")
    pid = int(raw[: raw.index("(")])
    fields = raw[close + 2 :].split()  # fields[0] is field 3
    ticks = sum(int(f) for f in fields[11:15])
    return ProcStat(pid, fields[0], int(fields[1]), int(fields[2]), ticks / CLOCK_TICKS,
                    int(fields[17]), int(fields[21]) * PAGE_SIZE)  # fmt: skip


def read_stat(pid: int) -> ProcStat | None:
    """The process's stat, or None when it is gone (between listing /proc and reading it)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read().decode("ascii", "replace")
    except OSError:
        return None
    return parse_stat(raw)


def iter_stats() -> Iterator[ProcStat]:
    """Every process's stat, as /proc lists them."""
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (st := read_stat(int(entry))) is not None:
            yield st


def children_of(stats: Iterable[ProcStat]) -> dict[int, list[int]]:
    """ppid -> the pids of its children, among `stats`."""
    children: dict[int, list[int]] = {}
    for st in stats:
        children.setdefault(st.ppid, []).append(st.pid)
    return children


def subtree(children: Mapping[int, list[int]], root: int) -> list[int]:
    """`root` and every descendant, by parentage (children_of): not by process group, because
    PostgreSQL backends call setsid() and leave the postmaster's group."""
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out
