"""Per-container CPU and memory, sampled once a second into the local monitor's sample format.

resources.json and resources.csv are then computed by the same code as the local backend
(analysis.resources). A component's figures are the sum over its containers (all the app's
replicas, Locust's master and workers), from the engine's cgroup accounting:
cpu_s   the container's total CPU time (cumulative, like the local monitor's process trees),
rss     anonymous memory (cgroup v2 `anon`, v1 `rss`): page cache is not the process's own,
threads the cgroup's task count, processes and db_clients from `docker top`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from docker.errors import DockerException

from gatewaybench.stack.monitor import Monitor, Sample, is_db_client


def memory_bytes(stats: Mapping[str, Any]) -> int:
    mem = stats.get("memory_stats", {})
    detail = mem.get("stats", {})
    for key in ("anon", "rss"):  # cgroup v2, cgroup v1
        if key in detail:
            return int(detail[key])
    return int(mem.get("usage", 0)) - int(detail.get("inactive_file", 0))


def top_args(engine_kind: str) -> str:
    """`top`'s ps arguments: Docker passes them to ps, Podman takes format descriptors."""
    return "pid,args" if engine_kind == "podman" else "-o pid,args"


def sample_container(
    container: Any, component: str, database: str | None, into: Sample, ps_args: str
) -> float | None:
    """Add one running container's figures but CPU to the component's sample; its cumulative CPU
    seconds (None if it has exited: no figure, as for a vanished process)."""
    try:
        stats = container.stats(stream=False, one_shot=True)
        top = container.top(ps_args=ps_args)
    except (DockerException, ValueError):  # Podman answers a gone container with non-JSON
        return None
    cpu_ns = stats.get("cpu_stats", {}).get("cpu_usage", {}).get("total_usage", 0)
    processes = [row[-1] for row in top.get("Processes") or []]
    if not processes:
        return None
    into.rss_bytes += memory_bytes(stats)
    into.threads += int(stats.get("pids_stats", {}).get("current", 0))
    into.processes += len(processes)
    if component == "postgres" and database:
        into.db_clients += sum(is_db_client(title, database) for title in processes)
    return float(cpu_ns) / 1e9


class ContainerMonitor(Monitor):
    """Named groups of containers, from the engine's accounting."""

    thread_name = "container-monitor"
    join_timeout_s = 30.0  # an engine call can take seconds on a busy machine

    def __init__(
        self,
        groups: Mapping[str, Sequence[Any]],
        database: str | None = None,
        ps_args: str = "-o pid,args",
    ) -> None:
        super().__init__()
        self.groups = groups  # component -> its containers
        self.database = database
        self.ps_args = ps_args  # top_args(the engine's kind)
        # Each container's last CPU seconds: CPU a container used stays used when it exits
        # (Locust's master ends right after the window), so a component's cumulative CPU never
        # goes down.
        self._cpu: dict[str, float] = {}

    def sample(self) -> Mapping[str, Sample]:
        out = {}
        for component, containers in self.groups.items():
            sample = Sample(time.time())
            for container in containers:
                cpu = sample_container(container, component, self.database, sample, self.ps_args)
                if cpu is not None:
                    self._cpu[container.id] = cpu
                sample.cpu_s += self._cpu.get(container.id, 0.0)
            out[component] = sample
        return out
