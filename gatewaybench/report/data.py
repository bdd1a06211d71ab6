"""Everything a report needs, read from a run directory (never from live processes)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from gatewaybench.analysis.capacity import Capacity, capacities
from gatewaybench.analysis.summary import of_model, read_steps
from gatewaybench.errors import UsageError
from gatewaybench.results.rundir import FAILURES_CSV, RESOURCES_CSV, STEPS_CSV
from gatewaybench.results.schema import read_manifest


@dataclass
class RunData:
    path: Path
    manifest: dict[str, Any]
    steps: pd.DataFrame
    failures: pd.DataFrame
    resources: pd.DataFrame

    @property
    def run_id(self) -> str:
        """The directory's name: what the user passed, and unique among compared runs."""
        return self.path.resolve().name

    @property
    def thresholds(self) -> dict[str, float]:
        limits = self.manifest.get("spec", {}).get("thresholds", {})
        return {"slo_ms": float(limits.get("slo_ms", 1000.0)),
                "fail_pct": float(limits.get("fail_pct", 1.0))}  # fmt: skip

    @property
    def servers(self) -> list[str]:
        return [str(s) for s in dict.fromkeys(self.steps["server"])] if not self.steps.empty else []

    @property
    def has_open(self) -> bool:
        """Whether any step of the run is an open-model step."""
        return not of_model(self.steps, "open").empty

    def of_model(self, model: str) -> RunData:
        """The run as if only one load model had run: its steps, and the resources and
        failures rows of those steps."""
        return replace(
            self,
            steps=of_model(self.steps, model),
            failures=rows_of_model(self.failures, model),
            resources=rows_of_model(self.resources, model),
        )

    def capacities(self) -> list[Capacity]:
        """The closed model's: users held."""
        closed = of_model(self.steps, "closed")
        if closed.empty:
            return []
        t = self.thresholds
        return capacities(closed, t["fail_pct"], t["slo_ms"])

    def open_capacities(self) -> list[Capacity]:
        """The open model's: arrivals/s held (repeats as an estimate), and its plateau."""
        t = self.thresholds
        return capacities(of_model(self.steps, "open"), t["fail_pct"], t["slo_ms"], "open")


def rows_of_model(df: pd.DataFrame, model: str) -> pd.DataFrame:
    """resources.csv or failures.csv rows of one load model's steps: an open step's rows have
    users 0 and a rate; rows without a rate column (older runs) are all closed."""
    if df.empty or "rate" not in df:
        return df if model == "closed" else df.iloc[0:0]
    closed = (df["users"] > 0) | df["rate"].isna()
    return df[closed] if model == "closed" else df[~closed]


def _optional_csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        return pd.DataFrame()
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def load_run(path: Path) -> RunData:
    """A run directory, or a UsageError naming what is missing, malformed or of a schema
    version this gatewaybench does not read."""
    manifest = read_manifest(path)
    if not (path / STEPS_CSV).is_file():
        raise UsageError(
            f"{path} is not a run directory (no {STEPS_CSV})",
            "pass a directory under reports/, e.g. reports/latest",
        )
    try:
        steps = read_steps(path)
    except (pd.errors.ParserError, KeyError, ValueError) as exc:
        raise UsageError(
            f"{path} has a malformed {STEPS_CSV} ({type(exc).__name__})",
            "re-run the bench or restore the file",
        ) from None
    return RunData(path, manifest, steps, _optional_csv(path / FAILURES_CSV),
                   _optional_csv(path / RESOURCES_CSV))  # fmt: skip
