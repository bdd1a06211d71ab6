"""Seed-article tables: one metric by server (rows) x users (columns), from steps.csv; then
capacity and the caveats that apply. Pure text over the run directory's files."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from gatewaybench.analysis.capacity import capacity_text, estimate
from gatewaybench.analysis.step import STEP_COLUMNS

INVALID_MARK = "*"
FAILED_CELL = "FAIL"


def read_steps(run_dir: Path) -> pd.DataFrame:
    df = pd.read_csv(run_dir / "steps.csv")
    if "repeat" not in df:  # run directories from before repeats existed
        df["repeat"] = 1
    for column in STEP_COLUMNS:  # columns added since the run was made read as missing
        if column not in df:
            df[column] = math.nan
    if not df.empty:
        df["valid"] = df["valid"].astype(str).str.lower() == "true"
    return df


def _cell(rows: list[dict[Any, Any]], column: str, fmt: str, with_ci: bool) -> str:
    finished = [r for r in rows if r["status"] == "ok" and not _nan(r[column])]
    if not finished:
        return FAILED_CELL
    est = estimate([float(r[column]) for r in finished])
    text = est.text(fmt) if with_ci else format(est.mean, fmt)
    return text + ("" if all(r["valid"] for r in rows) and len(finished) == len(rows) else "*")


def _nan(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def pivot_text(df: pd.DataFrame, column: str, title: str, fmt: str, with_ci: bool = False) -> str:
    """A fixed-width table; invalid steps are marked, failed steps say FAIL, never averaged."""
    servers = list(dict.fromkeys(df["server"]))
    users = sorted({int(u) for u in df["users"]})
    groups: dict[tuple[str, int], list[dict[Any, Any]]] = {}
    for rec in df.to_dict("records"):
        groups.setdefault((str(rec["server"]), int(rec["users"])), []).append(rec)
    cells = {key: _cell(rows, column, fmt, with_ci) for key, rows in groups.items()}
    width = max([len(s) for s in servers] + [len("server")])
    col = max([len(c) for c in cells.values()] + [len(str(u)) for u in users] + [6])
    lines = [title, f"{'server':<{width}}" + "".join(f" {u:>{col}}" for u in users)]
    for server in servers:
        row = "".join(f" {cells.get((server, u), '-'):>{col}}" for u in users)
        lines.append(f"{server:<{width}}{row}")
    return "\n".join(lines)


def seed_tables(df: pd.DataFrame) -> str:
    if df.empty:
        return "no steps finished"
    repeats = int(df["repeat"].max()) if "repeat" in df else 1
    suffix = f" (mean of {repeats} repeats ± 95% CI)" if repeats > 1 else ""
    parts = [
        pivot_text(df, "fail_pct", "Failure % by server x users" + suffix, ".1f"),
        pivot_text(df, "rps", "Requests/sec by server x users" + suffix, ".1f", with_ci=True),
    ]
    footer = []
    if not df["valid"].all():
        footer.append(f"{INVALID_MARK} invalid step (see invalid_reason in steps.csv)")
    if (df["status"] != "ok").any():
        footer.append(f"{FAILED_CELL}: the step did not run to the end of its window")
    return "\n\n".join(parts) + ("\n" + "\n".join(footer) if footer else "")


def caveats(df: pd.DataFrame) -> list[str]:
    """Plain sentences for what a reader must know before trusting the tables."""
    out = []
    for rec in df[~df["valid"]].to_dict("records"):
        out.append(f"{rec['server']} at {rec['users']} users is invalid: {rec['invalid_reason']}")
    if "xcheck" in df:
        for rec in df[df["xcheck"].astype(str).str.startswith("DISAGREES")].to_dict("records"):
            out.append(
                f"{rec['server']} at {rec['users']} users: nginx cross-check {rec['xcheck']}"
            )
    inflight = df[df["integrity"] == "consistent"]
    if not inflight.empty:
        out.append(
            f"{len(inflight)} step(s) ended with votes in flight or unanswered: the database "
            "counted at least every acknowledged vote (see votes_* in steps.csv)"
        )
    return out


def run_summary(run_dir: Path) -> str:
    """Everything printed at the end of a run, rebuilt from the run directory alone."""
    df = read_steps(run_dir)
    if df.empty:
        return "no steps finished"
    spec = json.loads((run_dir / "manifest.json").read_text()).get("spec", {})
    limits = spec.get("thresholds", {"slo_ms": 1000.0, "fail_pct": 1.0})
    load = spec.get("load", {})
    ramp, warmup, window = (f"{float(load.get(k, math.nan)):g}" for k in
                            ("ramp_s", "warmup_s", "window_s"))  # fmt: skip
    header = (
        f"Each step: {ramp} s ramp-up + {warmup} s warm-up (excluded), "
        f"then a {window} s steady window the figures come from."
    )
    parts = [header, seed_tables(df), capacity_text(df, limits["fail_pct"], limits["slo_ms"])]
    notes = caveats(df)
    if notes:
        parts.append("Caveats:\n" + "\n".join(f"- {n}" for n in notes))
    return "\n\n".join(p for p in parts if p)
