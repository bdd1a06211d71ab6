"""The open model's arrival process and in-flight cap, pure: no locust or gevent import, so the
statistics are unit-tested (tests/unit/test_arrivals.py) without gevent's monkey-patching.

Arrivals are a Poisson process: exponential gaps at rate lambda from a seeded random stream.
With N Locust processes, each runs its own stream at lambda / N from a seed derived from the
run's seed and the process's index; the superposition of independent Poisson processes is a
Poisson process at the sum of their rates, so the step offers lambda in total.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

ARRIVAL_MODES = ("session", "request")  # one polls session per arrival, or one GET of a path
DEFAULT_SEED = 1
DEFAULT_MAX_INFLIGHT = 1000


def process_seed(seed: int, index: int) -> int:
    """The seed of process `index`'s stream: a hash, so neighbouring indices (or seeds) do not
    give Mersenne Twister states that start alike."""
    digest = hashlib.sha256(f"gatewaybench-arrivals/{seed}/{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def share(total: int, parts: int, index: int) -> int:
    """Part `index` of `total` split over `parts` as evenly as whole numbers allow; the parts
    sum to `total` exactly (the first `total % parts` parts get one more)."""
    return total // parts + (1 if index < total % parts else 0)


class PoissonSchedule:
    """Intended arrival times (epoch seconds) after `start_s`, at `rate_per_s` on average."""

    def __init__(self, rate_per_s: float, start_s: float, seed: int) -> None:
        self.rate_per_s = rate_per_s
        self.start_s = start_s
        # Time since the start, summed apart from it: an epoch's float is only good to ~0.2 us,
        # and adding each gap to it would round every step.
        self._elapsed_s = 0.0
        self._rng = random.Random(seed)

    def gap(self) -> float:
        """The next exponential gap, in seconds (infinite at rate 0: nothing ever arrives)."""
        if self.rate_per_s <= 0:
            return math.inf
        return self._rng.expovariate(self.rate_per_s)

    def __iter__(self) -> Iterator[float]:
        while True:
            self._elapsed_s += self.gap()
            if math.isinf(self._elapsed_s):
                return
            yield self.start_s + self._elapsed_s


@dataclass
class InflightCap:
    """Sessions in flight, at most `cap`: an arrival beyond it is dropped and counted, never
    queued (a queue in the generator would hide the very delay the open model measures)."""

    cap: int
    inflight: int = 0
    admitted: int = 0
    dropped: int = 0

    def admit(self) -> bool:
        if self.inflight >= self.cap:
            self.dropped += 1
            return False
        self.inflight += 1
        self.admitted += 1
        return True

    def release(self) -> None:
        self.inflight -= 1


@dataclass(frozen=True)
class OpenConfig:
    """The open model's settings for one step, from GB_* variables (see from_env)."""

    rate_per_s: float  # arrivals per second offered by all the step's processes together
    max_inflight: int  # sessions in flight, over all processes
    seed: int
    arrival: str  # one of ARRIVAL_MODES
    path: str  # request mode's page

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, arrival: str = "", path: str = "") -> OpenConfig:
        """GB_RATE, GB_MAX_INFLIGHT, GB_ARRIVAL_SEED, GB_ARRIVAL (session|request) and
        GB_ARRIVAL_PATH; `arrival` and `path`, when given, win (a locustfile's fixed mode)."""
        config = cls(
            rate_per_s=float(env.get("GB_RATE", "0")),
            max_inflight=int(env.get("GB_MAX_INFLIGHT", str(DEFAULT_MAX_INFLIGHT))),
            seed=int(env.get("GB_ARRIVAL_SEED", str(DEFAULT_SEED))),
            arrival=arrival or env.get("GB_ARRIVAL", "session"),
            path=path or env.get("GB_ARRIVAL_PATH", "/"),
        )
        problem = config.problem()
        if problem is not None:
            raise ValueError(problem)
        return config

    def problem(self) -> str | None:
        if not (self.rate_per_s >= 0 and math.isfinite(self.rate_per_s)):
            return f"GB_RATE must be a finite number >= 0, not {self.rate_per_s}"
        if self.max_inflight < 1:
            return f"GB_MAX_INFLIGHT must be >= 1, not {self.max_inflight}"
        if self.arrival not in ARRIVAL_MODES:
            return f"GB_ARRIVAL must be one of {', '.join(ARRIVAL_MODES)}, not {self.arrival!r}"
        if not self.path.startswith("/"):
            return f"GB_ARRIVAL_PATH must start with '/', not {self.path!r}"
        return None

    def for_process(self, index: int, processes: int, start_s: float) -> ProcessPlan:
        """Process `index` of `processes`: its share of the rate and cap, its own stream."""
        return ProcessPlan(
            index=index,
            processes=processes,
            schedule=PoissonSchedule(
                self.rate_per_s / processes, start_s, process_seed(self.seed, index)
            ),
            cap=InflightCap(share(self.max_inflight, processes, index)),
        )


@dataclass
class ProcessPlan:
    index: int
    processes: int
    schedule: PoissonSchedule
    cap: InflightCap

    def describe(self) -> dict[str, float | int]:
        """What the record keeps of this process's part (the run's seed is in its config)."""
        return {
            "process_index": self.index,
            "processes": self.processes,
            "process_rate": self.schedule.rate_per_s,
            "process_max_inflight": self.cap.cap,
        }
