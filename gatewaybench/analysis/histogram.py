"""A sparse latency histogram: recorded latencies in whole microseconds -> counts.

A recorded value stands for the latencies of its bucket: in Locust's records, the value
loadtests/recording.py's bucket_us gave (its docstring states the bound); from nginx's access
log, the whole millisecond nginx wrote (analysis/nginxlog.py). Every figure computed here
(percentiles, mean, max, counts above a threshold) is computed over recorded values and is no
more precise than they are. The keys are values, not bucket indices: merging seconds, processes,
steps or runs is addition whatever bucketing recorded each part, and the on-disk form (the
"hist" of raw/**/record-*.json, the "counts" of window-histogram.json) is readable JSON.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping


class Histogram:
    def __init__(self, counts: Mapping[int, int] | None = None) -> None:
        self.counts: Counter[int] = Counter(counts or {})

    @classmethod
    def from_json(cls, data: Mapping[str, int]) -> Histogram:
        return cls({int(k): int(v) for k, v in data.items()})

    def to_json(self) -> dict[str, int]:
        return {str(k): v for k, v in sorted(self.counts.items())}

    def merge(self, other: Histogram) -> None:
        self.counts.update(other.counts)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def sum_us(self) -> int:
        return sum(value * count for value, count in self.counts.items())

    def mean_ms(self) -> float:
        total = self.total
        return self.sum_us() / total / 1000 if total else math.nan

    def max_ms(self) -> float:
        return max(self.counts) / 1000 if self.counts else math.nan

    def percentile_ms(self, q: float) -> float:
        """The smallest recorded value with at least q% of observations at or below it (nearest
        rank): the true q-th latency is in that value's bucket."""
        total = self.total
        if not total:
            return math.nan
        rank = max(1, math.ceil(q / 100 * total))
        seen = 0
        for value in sorted(self.counts):
            seen += self.counts[value]
            if seen >= rank:
                return value / 1000
        return max(self.counts) / 1000

    def count_above_ms(self, threshold_ms: float) -> int:
        """Observations recorded above the threshold (one closer to it than its bucket's
        half-width may have been on the other side)."""
        limit = threshold_ms * 1000
        return sum(c for v, c in self.counts.items() if v > limit)


def merged(histograms: Iterable[Histogram]) -> Histogram:
    out = Histogram()
    for h in histograms:
        out.merge(h)
    return out
