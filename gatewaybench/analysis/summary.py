"""The end-of-run summary the terminal prints (run_summary), rebuilt from the run directory: the
seed-article tables, one metric by server (rows) x users (columns) from steps.csv, then capacity
and the caveats that apply. The pivot under those tables is plain data, shared with the HTML and
Markdown reports (report/tables.py), and so are the caveats; the rest is text."""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from gatewaybench.analysis.capacity import LEVELS, Estimate, capacity_text, estimate
from gatewaybench.analysis.step import STEP_COLUMNS
from gatewaybench.analysis.step import level_text as step_level_text
from gatewaybench.results.rundir import STEPS_CSV
from gatewaybench.results.schema import read_manifest

INVALID_MARK = "*"
FAILED_CELL = "FAIL"
NOT_RUN_CELL = "-"
NO_VALUE = "n/a"


def read_steps(run_dir: Path) -> pd.DataFrame:
    df = pd.read_csv(run_dir / STEPS_CSV)
    if "repeat" not in df:  # run directories from before repeats existed
        df["repeat"] = 1
    for column in STEP_COLUMNS:  # columns added since the run was made read as missing
        if column not in df:
            df[column] = math.nan
    if not df.empty:
        df["valid"] = df["valid"].astype(str).str.lower() == "true"
    # Runs from before the open model: all closed.
    df["model"] = df["model"].astype(object).where(df["model"].notna(), "closed")
    return df


def of_model(df: pd.DataFrame, model: str) -> pd.DataFrame:
    """The steps of one load model (read_steps filled the model of older runs: closed; a
    frame without the column is all closed)."""
    if "model" not in df:
        return df if model == "closed" else df.iloc[0:0]
    return df[df["model"] == model]


def level_text(rec: Mapping[Hashable, Any]) -> str:
    """A steps.csv row's level for people: "300 users", "20 arrivals/s"."""
    rate = float(rec["rate"]) if rec.get("model") == "open" else None
    return step_level_text(int(rec["users"]), rate)


@dataclass(frozen=True)
class PivotCell:
    """One server x users cell of a seed table, over the cell's repeats."""

    value: Estimate  # over the repeats that finished with a value (n = 0: none did)
    failed: bool  # no repeat ran to the end of its window: there is nothing to show
    invalid: bool  # a repeat is invalid or failed: the value is marked, never shown plain
    reasons: str  # why, from each such repeat's invalid_reason
    fail_pct: float  # mean failure % of the finished repeats (NaN: none finished)

    def text(self, fmt: str, with_ci: bool) -> str:
        if self.failed:
            return FAILED_CELL
        if self.value.n == 0:
            number = NO_VALUE
        else:
            number = self.value.text(fmt) if with_ci else format(self.value.mean, fmt)
        return number + (INVALID_MARK if self.invalid else "")


@dataclass(frozen=True)
class Pivot:
    """One metric by server (rows, in run order) x level (columns, ascending: the closed
    model's users, or the open model's arrivals/s): the data of a seed table, whatever renders
    it, so every renderer marks the same cells."""

    servers: list[str]
    levels: list[float]
    cells: dict[tuple[str, float], PivotCell]
    repeats: int  # the most repeats any cell has
    unit: str = "users"  # what the levels count

    def cell(self, server: str, level: float) -> PivotCell | None:
        """None: no step ran for this server at this level."""
        return self.cells.get((server, level))

    def text(self, server: str, level: float, fmt: str, with_ci: bool) -> str:
        cell = self.cell(server, level)
        return NOT_RUN_CELL if cell is None else cell.text(fmt, with_ci)

    @property
    def headers(self) -> list[str]:
        return [f"{level:g}" for level in self.levels]

    def caption_suffix(self, with_ci: bool) -> str:
        if self.repeats < 2:
            return ""
        return f" (mean of {self.repeats} repeats{' ± 95% CI' if with_ci else ''})"

    def legend(self) -> list[str]:
        """What the marks in this table mean; only the marks it shows."""
        cells = self.cells.values()
        out = []
        if any(c.invalid and not c.failed for c in cells):
            reason = "the reason is in the caveats and in steps.csv"
            out.append(f"{INVALID_MARK} invalid step ({reason})")
        if any(c.failed for c in cells):
            out.append(f"{FAILED_CELL}: the step did not run to the end of its window")
        return out


def pivot(df: pd.DataFrame, column: str, model: str = "closed") -> Pivot:
    """The seed-table pivot of steps.csv's `column` over one load model's steps (see
    read_steps): by users (closed) or arrivals/s (open)."""
    level, unit = LEVELS[model]
    if "model" in df:
        df = of_model(df, model)
    groups: dict[tuple[str, float], list[dict[Any, Any]]] = {}
    for rec in df.to_dict("records"):
        groups.setdefault((str(rec["server"]), _level(rec[level])), []).append(rec)
    return Pivot(
        servers=[str(s) for s in dict.fromkeys(df["server"])],
        levels=sorted({_level(u) for u in df[level]}),
        cells={key: _pivot_cell(rows, column) for key, rows in groups.items()},
        repeats=max((len(rows) for rows in groups.values()), default=0),
        unit=unit,
    )


def _level(value: Any) -> float:
    """Users are whole; rates may not be: one number type for both, as keys and for sorting."""
    number = float(value)
    return int(number) if number.is_integer() else number


def _pivot_cell(rows: list[dict[Any, Any]], column: str) -> PivotCell:
    finished = [r for r in rows if r["status"] == "ok"]
    fail_pcts = [float(r["fail_pct"]) for r in finished if not _nan(r["fail_pct"])]
    flawed = [r for r in rows if r["status"] != "ok" or not r["valid"]]
    prefix = len(rows) > 1  # name the repeat when there are several
    reasons = [
        f"{'repeat ' + str(r['repeat']) + ': ' if prefix else ''}{plain_text(r['invalid_reason'])}"
        for r in flawed
    ]
    return PivotCell(
        value=estimate([float(r[column]) for r in finished if not _nan(r[column])]),
        failed=not finished,
        invalid=bool(flawed),
        reasons="; ".join(r for r in reasons if r),
        fail_pct=estimate(fail_pcts).mean,
    )


def _nan(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def plain_text(value: Any) -> str:
    """A cell of a CSV read by pandas as text: a missing one (None, NaN) is empty."""
    return "" if _nan(value) else str(value)


def pivot_text(
    df: pd.DataFrame,
    column: str,
    title: str,
    fmt: str,
    *,
    with_ci: bool = False,
    model: str = "closed",
) -> str:
    """A fixed-width table of pivot(df, column, model), its marks explained by
    seed_tables_text."""
    p = pivot(df, column, model)
    texts = {key: cell.text(fmt, with_ci) for key, cell in p.cells.items()}
    width = max([len(s) for s in p.servers] + [len("server")])
    col = max([len(t) for t in texts.values()] + [len(h) for h in p.headers] + [6])
    lines = [
        title + p.caption_suffix(with_ci),
        f"{'server':<{width}}" + "".join(f" {h:>{col}}" for h in p.headers),
    ]
    for server in p.servers:
        row = "".join(f" {p.text(server, u, fmt, with_ci):>{col}}" for u in p.levels)
        lines.append(f"{server:<{width}}{row}")
    return "\n".join(lines)


# The open model's tables: drops beside failures, and latency from the intended start.
OPEN_TABLES = (
    ("fail_pct", "Failure % by server x arrivals/s", ".1f", False),
    ("drop_pct", "Dropped arrivals % by server x arrivals/s (in flight at --max-inflight)", ".1f",
     False),
    ("rps", "Requests/sec by server x arrivals/s", ".1f", True),
    ("intended_p95_ms", "p95 from the intended start (ms) by server x arrivals/s", ".0f", False),
)  # fmt: skip


def seed_tables_text(df: pd.DataFrame) -> str:
    if df.empty:
        return "no steps finished"
    parts, legend = [], []
    closed = of_model(df, "closed")
    if not closed.empty:
        parts += [
            pivot_text(closed, "fail_pct", "Failure % by server x users", ".1f"),
            pivot_text(closed, "rps", "Requests/sec by server x users", ".1f", with_ci=True),
        ]
        legend += pivot(closed, "rps").legend()  # the marks do not depend on the metric
    opened = of_model(df, "open")
    if not opened.empty:
        parts += [pivot_text(opened, column, title, fmt, with_ci=ci, model="open")
                  for column, title, fmt, ci in OPEN_TABLES]  # fmt: skip
        legend += [m for m in pivot(opened, "rps", "open").legend() if m not in legend]
    return "\n\n".join(parts) + ("\n" + "\n".join(legend) if legend else "")


def caveats(df: pd.DataFrame) -> list[str]:
    """Plain sentences for what a reader must know before trusting the tables."""
    out = []
    for rec in df[~df["valid"]].to_dict("records"):
        out.append(f"{rec['server']} at {level_text(rec)} is invalid: {rec['invalid_reason']}")
    if "xcheck" in df:
        for rec in df[df["xcheck"].astype(str).str.startswith("DISAGREES")].to_dict("records"):
            out.append(f"{rec['server']} at {level_text(rec)}: nginx cross-check {rec['xcheck']}")
    inflight = df[df["integrity"] == "consistent"]
    if not inflight.empty:
        out.append(
            f"{len(inflight)} step(s) ended with votes in flight or unanswered: the database "
            "counted at least every acknowledged vote (see votes_* in steps.csv)"
        )
    return out


def configuration_caveats(manifest: dict[str, Any]) -> list[str]:
    """What the run warned about its configuration and the app (e.g. DEBUG on), as caveats."""
    warnings = manifest.get("resolved", {}).get("warnings", [])
    return [f"Configuration warning: {w}" for w in warnings]


def run_summary(run_dir: Path) -> str:
    """Everything printed at the end of a run, rebuilt from the run directory alone."""
    df = read_steps(run_dir)
    if df.empty:
        return "no steps finished"
    manifest = read_manifest(run_dir)
    spec = manifest.get("spec", {})
    limits = spec.get("thresholds", {"slo_ms": 1000.0, "fail_pct": 1.0})
    load = spec.get("load", {})
    ramp, warmup, window = (f"{float(load.get(k, math.nan)):g}" for k in
                            ("ramp_s", "warmup_s", "window_s"))  # fmt: skip
    header = (
        f"Each step: {ramp} s ramp-up + {warmup} s warm-up (excluded), "
        f"then a {window} s steady window the figures come from."
    )
    if of_model(df, "closed").empty:  # arrivals need no users spawned first
        header = (
            f"Each step: arrivals from its start, {warmup} s warm-up (excluded), "
            f"then a {window} s steady window the figures come from."
        )
    parts = [
        header,
        seed_tables_text(df),
        capacity_text(of_model(df, "closed"), limits["fail_pct"], limits["slo_ms"]),
        capacity_text(of_model(df, "open"), limits["fail_pct"], limits["slo_ms"], "open"),
    ]
    notes = caveats(df) + configuration_caveats(manifest)
    if notes:
        parts.append("Caveats:\n" + "\n".join(f"- {n}" for n in notes))
    return "\n\n".join(p for p in parts if p)
