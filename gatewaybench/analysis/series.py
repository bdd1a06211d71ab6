"""Cumulative counters sampled over time (CPU seconds), read at any instant."""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise


def value_at(samples: Sequence[Sequence[float]], t: float) -> float:
    """Linear interpolation of (time, value, ...) samples at t, clamped to the first and last."""
    if not samples:
        return math.nan
    if t <= samples[0][0]:
        return samples[0][1]
    for (t0, v0, *_), (t1, v1, *_) in pairwise(samples):
        if t0 <= t <= t1:
            return v0 + (v1 - v0) * ((t - t0) / (t1 - t0) if t1 > t0 else 0.0)
    return samples[-1][1]
