"""Per-step resource figures from the monitor's samples: CPU %, peak memory, threads, DB clients."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from gatewaybench.analysis.series import value_at

RESOURCE_COLUMNS = (
    "server", "repeat", "users", "component", "cpu_pct", "peak_rss_mb", "peak_threads",
    "peak_processes", "peak_db_clients", "rate",
)  # fmt: skip


@dataclass
class ResourceRow:
    server: str
    repeat: int
    users: int
    component: str
    cpu_pct: float  # of one core, averaged over the steady window
    peak_rss_mb: float  # sum of members' RSS (shared pages count once per process)
    peak_threads: int
    peak_processes: int
    peak_db_clients: int
    rate: float = math.nan  # an open-model step's arrivals/s (users is then 0)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def resource_rows(
    data: dict[str, Any],
    *,
    server: str,
    repeat: int,
    users: int,
    start: float,
    end: float,
    rate: float = math.nan,
) -> list[ResourceRow]:
    rows = []
    for component, all_samples in sorted(data.get("components", {}).items()):
        # A sample with no live process (the component already exited) carries no figure.
        samples = [s for s in all_samples if s[4] > 0]
        if not samples:
            continue
        inside = [s for s in samples if start <= s[0] <= end] or samples
        cpu = (value_at(samples, end) - value_at(samples, start)) / (end - start) * 100
        rows.append(
            ResourceRow(
                server,
                repeat,
                users,
                component,
                round(cpu, 1),
                round(max(s[2] for s in inside) / 2**20, 1),
                max(int(s[3]) for s in inside),
                max(int(s[4]) for s in inside),
                max(int(s[5]) for s in inside),
                rate,
            )
        )
    return rows
