"""`--processes auto`: give Locust another process before it becomes the bottleneck."""

from __future__ import annotations

import math
import os

from gatewaybench.analysis.step import StepRow

TARGET_PCT_PER_PROCESS = 70.0  # headroom below the 80 % that invalidates a step


def next_processes(current: int, previous: StepRow | None, next_users: int) -> int:
    """Project the last step's generator CPU to the next step's users; never scale down."""
    if previous is None or previous.status != "ok" or math.isnan(previous.gen_cpu_pct):
        return current
    projected = previous.gen_cpu_pct * next_users / previous.users
    needed = math.ceil(projected / TARGET_PCT_PER_PROCESS)
    return max(current, min(needed, os.cpu_count() or 1))
