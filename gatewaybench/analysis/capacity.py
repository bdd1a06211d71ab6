"""Capacity: the largest user step a server held, and its requests/sec plateau; across repeats,
a mean with a 95 % confidence interval."""

from __future__ import annotations

import math
import statistics
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from gatewaybench.stats import t_quantile

CONFIDENCE = 0.95  # two-sided, of every interval the tables and reports show


@dataclass(frozen=True)
class Estimate:
    mean: float
    half_width: float  # NaN with a single observation
    n: int

    def text(self, fmt: str = ".0f") -> str:
        if self.n < 2 or math.isnan(self.half_width):
            return format(self.mean, fmt)
        return f"{self.mean:{fmt}} ± {self.half_width:{fmt}}"


def estimate(values: list[float]) -> Estimate:
    """The mean and its Student's t interval at CONFIDENCE (the t-value exact at any n)."""
    n = len(values)
    if n == 0:
        return Estimate(math.nan, math.nan, 0)
    if n == 1:
        return Estimate(values[0], math.nan, 1)
    t = t_quantile(0.5 + CONFIDENCE / 2, n - 1)
    return Estimate(statistics.fmean(values), t * statistics.stdev(values) / math.sqrt(n), n)


def held(row: Mapping[Hashable, Any], fail_pct_max: float, slo_ms: float) -> bool:
    """A step was held when it is valid, finished, under the failure limit and within the SLO."""
    return bool(
        row["status"] == "ok"
        and row["valid"]
        and float(row["fail_pct"]) < fail_pct_max
        and float(row["p95_ms"]) <= slo_ms
    )


def capacity_of(steps: pd.DataFrame, fail_pct_max: float, slo_ms: float) -> int:
    """Largest step such that it and every smaller step were held (0: not even the first)."""
    capacity = 0
    for row in steps.sort_values("users").to_dict("records"):
        if not held(row, fail_pct_max, slo_ms):
            break
        capacity = int(row["users"])
    return capacity


def plateau_rps(steps: pd.DataFrame) -> float:
    """Highest rate of *successful* requests on a valid step: failing fast is not throughput."""
    ok = steps[(steps["status"] == "ok") & steps["valid"]]
    return float(ok["ok_rps"].max()) if not ok.empty else math.nan


@dataclass(frozen=True)
class Capacity:
    server: str
    capacity: Estimate
    plateau: Estimate


def capacities(df: pd.DataFrame, fail_pct_max: float, slo_ms: float) -> list[Capacity]:
    out = []
    for server in dict.fromkeys(df["server"]):
        per_repeat = [g for _, g in df[df["server"] == server].groupby("repeat")]
        caps = [float(capacity_of(g, fail_pct_max, slo_ms)) for g in per_repeat]
        plateaus = [p for p in (plateau_rps(g) for g in per_repeat) if not math.isnan(p)]
        out.append(Capacity(str(server), estimate(caps), estimate(plateaus)))
    return out


def capacity_text(df: pd.DataFrame, fail_pct_max: float, slo_ms: float) -> str:
    if df.empty:
        return ""
    lines = [
        f"Capacity (largest step held: valid, failures < {fail_pct_max:g} %, "
        f"p95 <= {slo_ms:g} ms; plateau: successful req/s on valid steps)"
    ]
    width = max(len(s) for s in df["server"].astype(str))
    for c in capacities(df, fail_pct_max, slo_ms):
        cap = "below the first step" if c.capacity.mean == 0 else f"{c.capacity.text()} users"
        lines.append(
            f"{c.server:<{width}}  {cap}; plateau {c.plateau.text('.1f')} successful req/s"
        )
    return "\n".join(lines)


def held_open(row: Mapping[Hashable, Any], fail_pct_max: float, slo_ms: float) -> bool:
    """An open-model step was held when it is valid and finished, its failures and its drops
    each under the failure limit, and its p95 from the intended start within the SLO."""
    return bool(
        row["status"] == "ok"
        and row["valid"]
        and float(row["fail_pct"]) < fail_pct_max
        and float(row["drop_pct"]) < fail_pct_max
        and float(row["intended_p95_ms"]) <= slo_ms
    )


def open_capacity_of(steps: pd.DataFrame, fail_pct_max: float, slo_ms: float) -> float:
    """Highest rate such that it and every lower rate were held (0: not even the first)."""
    capacity = 0.0
    for row in steps.sort_values("rate").to_dict("records"):
        if not held_open(row, fail_pct_max, slo_ms):
            break
        capacity = float(row["rate"])
    return capacity


def open_capacities(df: pd.DataFrame, fail_pct_max: float, slo_ms: float) -> list[Capacity]:
    """Per server of the open model's steps: arrivals/s held (repeats as an estimate) and the
    plateau of successful requests/s on valid steps."""
    out = []
    for server in dict.fromkeys(df["server"]):
        per_repeat = [g for _, g in df[df["server"] == server].groupby("repeat")]
        caps = [open_capacity_of(g, fail_pct_max, slo_ms) for g in per_repeat]
        plateaus = [p for p in map(plateau_rps, per_repeat) if not math.isnan(p)]
        out.append(Capacity(str(server), estimate(caps), estimate(plateaus)))
    return out


def open_capacity_text(df: pd.DataFrame, fail_pct_max: float, slo_ms: float) -> str:
    """The open model's capacity per server, for the terminal."""
    if df.empty:
        return ""
    lines = [
        f"Open-model capacity (highest arrival rate held: valid, failures and drops each "
        f"< {fail_pct_max:g} %, p95 from the intended start <= {slo_ms:g} ms)"
    ]
    width = max(len(s) for s in df["server"].astype(str))
    for c in open_capacities(df, fail_pct_max, slo_ms):
        held = c.capacity.text(".3g") + " arrivals/s"
        cap = "below the first rate" if c.capacity.mean == 0 else held
        plateau = c.plateau.text(".1f")
        lines.append(f"{c.server:<{width}}  {cap}; plateau {plateau} successful req/s")
    return "\n".join(lines)
