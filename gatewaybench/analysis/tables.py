"""Seed-article tables: one metric by server (rows) x users (columns), from steps.csv."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

INVALID_MARK = "*"
FAILED_CELL = "FAIL"


def read_steps(run_dir: Path) -> pd.DataFrame:
    df = pd.read_csv(run_dir / "steps.csv")
    if not df.empty:
        df["valid"] = df["valid"].astype(str).str.lower() == "true"
    return df


def pivot_text(df: pd.DataFrame, column: str, title: str, fmt: str) -> str:
    """A fixed-width table; invalid steps are marked, failed steps say FAIL, never averaged."""
    servers = list(dict.fromkeys(df["server"]))
    users = sorted(set(int(u) for u in df["users"]))
    cells: dict[tuple[str, int], str] = {}
    for rec in df.to_dict("records"):
        value = rec[column]
        if (
            rec["status"] != "ok"
            or value is None
            or (isinstance(value, float) and math.isnan(value))
        ):
            text = FAILED_CELL
        else:
            text = format(float(value), fmt) + ("" if rec["valid"] else INVALID_MARK)
        cells[(str(rec["server"]), int(rec["users"]))] = text
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
    parts = [
        pivot_text(df, "fail_pct", "Failure % by server x users", ".1f"),
        pivot_text(df, "rps", "Requests/sec by server x users", ".1f"),
    ]
    footer = []
    if not df["valid"].all():
        footer.append(f"{INVALID_MARK} invalid step (see invalid_reason in steps.csv)")
    if (df["status"] != "ok").any():
        footer.append(f"{FAILED_CELL}: the step did not run to the end of its window")
    return "\n\n".join(parts) + ("\n" + "\n".join(footer) if footer else "")
