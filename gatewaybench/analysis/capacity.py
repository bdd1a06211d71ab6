"""Capacity: the largest user step a server held, and its requests/sec plateau; across repeats,
a mean with a 95 % confidence interval."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
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


# The p95 each load model's capacity is held to: the column, and its name in sentences.
P95 = {"closed": ("p95_ms", "p95"), "open": ("intended_p95_ms", "p95 from the intended start")}


def not_held(row: Mapping[Any, Any], fail_pct_max: float, slo_ms: float) -> str:
    """Why a step was not held, "" when it was: it finished, is valid, its failures are under
    the limit, for the open model its drops too, and its p95 (the open model's: from the
    intended start) is within the SLO. The one rule of capacity, of --users/--rate auto's
    probes and of the report's sentences. A figure that is not a number does not pass."""
    if row["status"] != "ok":
        return "the step did not finish"
    if not row["valid"]:
        return f"the step was invalid ({row.get('invalid_reason', '')})"
    if not float(row["fail_pct"]) < fail_pct_max:
        return f"{float(row['fail_pct']):.1f} % of requests failed"
    opened = row.get("model") == "open"
    if opened and not float(row["drop_pct"]) < fail_pct_max:
        return f"{float(row['drop_pct']):.1f} % of arrivals were dropped"
    column, name = (
        ("intended_p95_ms", "p95 from the intended start") if opened else ("p95_ms", "p95")
    )
    if not float(row[column]) <= slo_ms:
        return f"{name} was {float(row[column]):.0f} ms"
    return ""


def held(row: Mapping[Any, Any], fail_pct_max: float, slo_ms: float) -> bool:
    return not not_held(row, fail_pct_max, slo_ms)


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


def open_capacity_of(steps: pd.DataFrame, fail_pct_max: float, slo_ms: float) -> float:
    """Highest rate such that it and every lower rate were held (0: not even the first)."""
    capacity = 0.0
    for row in steps.sort_values("rate").to_dict("records"):
        if not held(row, fail_pct_max, slo_ms):
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
