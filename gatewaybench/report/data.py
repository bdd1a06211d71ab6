"""Everything a report needs, read from a run directory (never from live processes)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from gatewaybench.analysis.capacity import Capacity, capacities
from gatewaybench.analysis.summary import read_steps
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

    def capacities(self) -> list[Capacity]:
        if self.steps.empty:
            return []
        t = self.thresholds
        return capacities(self.steps, t["fail_pct"], t["slo_ms"])


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
