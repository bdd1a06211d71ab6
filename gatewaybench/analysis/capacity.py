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


# Each load model's axis: the steps.csv column a step's level is in, and what it counts.
LEVELS = {"closed": ("users", "users"), "open": ("rate", "arrivals/s")}


def capacity_of(
    steps: pd.DataFrame, fail_pct_max: float, slo_ms: float, model: str = "closed"
) -> float:
    """Largest level (users, or the open model's arrivals/s) such that it and every lower
    level were held (0: not even the first)."""
    column = LEVELS[model][0]
    capacity = 0.0
    for row in steps.sort_values(column).to_dict("records"):
        if not held(row, fail_pct_max, slo_ms):
            break
        capacity = float(row[column])
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


def capacities(
    df: pd.DataFrame, fail_pct_max: float, slo_ms: float, model: str = "closed"
) -> list[Capacity]:
    """Per server of one model's steps: its capacity over the repeats, and its plateau."""
    out = []
    for server in dict.fromkeys(df["server"]):
        per_repeat = [g for _, g in df[df["server"] == server].groupby("repeat")]
        caps = [capacity_of(g, fail_pct_max, slo_ms, model) for g in per_repeat]
        plateaus = [p for p in (plateau_rps(g) for g in per_repeat) if not math.isnan(p)]
        out.append(Capacity(str(server), estimate(caps), estimate(plateaus)))
    return out


# The terminal's capacity heading per model, its limits filled in by capacity_text.
CAPACITY_HEADINGS = {
    "closed": "Capacity (largest step held: valid, failures < {fail:g} %, p95 <= {slo:g} ms; "
    "plateau: successful req/s on valid steps)",
    "open": "Open-model capacity (highest arrival rate held: valid, failures and drops each "
    "< {fail:g} %, p95 from the intended start <= {slo:g} ms)",
}


def capacity_text(
    df: pd.DataFrame, fail_pct_max: float, slo_ms: float, model: str = "closed"
) -> str:
    if df.empty:
        return ""
    lines = [CAPACITY_HEADINGS[model].format(fail=fail_pct_max, slo=slo_ms)]
    width = max(len(s) for s in df["server"].astype(str))
    unit, fmt = LEVELS[model][1], ".0f" if model == "closed" else ".3g"
    first = "below the first step" if model == "closed" else "below the first rate"
    for c in capacities(df, fail_pct_max, slo_ms, model):
        cap = first if c.capacity.mean == 0 else f"{c.capacity.text(fmt)} {unit}"
        plateau = c.plateau.text(".1f")
        lines.append(f"{c.server:<{width}}  {cap}; plateau {plateau} successful req/s")
    return "\n".join(lines)
