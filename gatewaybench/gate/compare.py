"""`gatewaybench compare BASE_RUN CAND_RUN`: two finished runs, per server x metric a change, an
interval and a mark, and an exit code (0 no regression, 1 regression, 3 inconclusive).

The metrics are the gate's, read from each run's tables, one value per repeat:
- latency_p50_ms / latency_p95_ms and cpu_ms_per_req at the lowest user step both runs share
  (the sub-knee load, as far as two arbitrary runs have one);
- plateau_rps: the most successful requests/sec any valid step of that repeat reached.
Invalid steps never enter a value; a server with no usable value is reported as missing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from gatewaybench.gate.outputs import (
    BOUND_LABEL,
    Comparison,
    compare_runs_verdicts,
    junit_xml,
    markdown_summary,
)
from gatewaybench.gate.verdict import format_p, format_pct
from gatewaybench.report.data import RunData, load_run
from gatewaybench.report.multirun import render_multirun
from gatewaybench.report.tables import Table, TableCell
from gatewaybench.results.files import write_atomic

# server -> metric -> one value per repeat
Values = dict[str, dict[str, list[float]]]


def sub_knee_users(base: RunData, cand: RunData, server: str) -> int | None:
    def users(run: RunData) -> set[int]:
        s = run.steps
        return {int(u) for u in s[(s["server"] == server) & (s["status"] == "ok")]["users"]}

    common = users(base) & users(cand)
    return min(common) if common else None


def run_values(run: RunData, users_at: Mapping[str, int | None]) -> Values:
    out: Values = {}
    steps = run.steps
    valid = steps[(steps["status"] == "ok") & (steps["valid"].astype(str) == "True")]
    for server in run.servers:
        mine = valid[valid["server"] == server]
        metrics: dict[str, list[float]] = {}
        for repeat, group in mine.groupby("repeat"):
            metrics.setdefault("plateau_rps", []).append(float(group["ok_rps"].max()))
            low = users_at.get(server)
            at = group[group["users"] == low] if low is not None else group.iloc[0:0]
            if at.empty:
                continue
            row = at.iloc[0]
            metrics.setdefault("latency_p50_ms", []).append(float(row["p50_ms"]))
            metrics.setdefault("latency_p95_ms", []).append(float(row["p95_ms"]))
            cpu = _app_cpu_pct(run.resources, server, int(str(repeat)), int(row["users"]))
            rps = float(row["rps"])
            metrics.setdefault("cpu_ms_per_req", []).append(
                cpu * 10 / rps if rps > 0 and not math.isnan(cpu) else math.nan
            )
        out[server] = metrics
    return out


def _app_cpu_pct(resources: pd.DataFrame, server: str, repeat: int, users: int) -> float:
    """The app server's CPU % (of one core) over the step's window, from resources.csv."""
    if resources.empty:
        return math.nan
    r = resources
    rows = r[(r["server"] == server) & (r["repeat"] == repeat) & (r["users"] == users)
             & (r["component"] == "app")]  # fmt: skip
    return float(rows["cpu_pct"].iloc[0]) if not rows.empty else math.nan


def compare_runs(base_dir: Path, cand_dir: Path) -> Comparison:
    base, cand = load_run(base_dir), load_run(cand_dir)
    servers = list(dict.fromkeys([*base.servers, *cand.servers]))
    users_at = {s: sub_knee_users(base, cand, s) for s in servers}
    return compare_runs_verdicts(run_values(base, users_at), run_values(cand, users_at))


VERDICT_CSS = {"regression": "s4", "inconclusive": "s2", "warn": "s1", "better": "s0",
               "no_change": "s0"}  # fmt: skip


def verdict_table(comparison: Comparison) -> Table:
    """The gate's results carry the bound that decides 'no change'; compare's do not."""
    with_bound = any(math.isfinite(r.bound_pct) for r in comparison.results)
    table = Table(
        "Candidate vs base per server x metric (percent worse; negative is better)",
        ["server", "metric", "change", "interval", *([BOUND_LABEL] if with_bound else []), "p",
         "verdict", "why"],
    )  # fmt: skip
    for r in comparison.results:
        table.rows.append(
            [
                TableCell(r.server, "rowhead"),
                TableCell(r.metric),
                TableCell(format_pct(r.median_change_pct)),
                TableCell(f"{format_pct(r.ci_low_pct)} .. {format_pct(r.ci_high_pct)}"),
                *([TableCell(format_pct(r.bound_pct))] if with_bound else []),
                TableCell(format_p(r.p_value)),
                TableCell(str(r.verdict), VERDICT_CSS.get(str(r.verdict), "")),
                TableCell(r.message),
            ]
        )
    return table


def write_comparison(base_dir: Path, cand_dir: Path, out_dir: Path) -> tuple[int, list[Path]]:
    """The two runs' multi-run report (HTML + markdown tables and curves) led by the verdicts,
    and the verdicts as markdown and JUnit XML; returns the exit code and the files written."""
    comparison = compare_runs(base_dir, cand_dir)
    verdict_md = markdown_summary(
        comparison.results,
        title=f"gatewaybench compare: {cand_dir.resolve().name} vs {base_dir.resolve().name}",
        count_label="repeats",
    )
    paths = render_multirun(
        [base_dir, cand_dir],
        out_dir,
        verdict_md=verdict_md,
        verdict_table=verdict_table(comparison),
    )
    extra = {
        out_dir / "verdict.md": verdict_md,
        out_dir / "verdict.junit.xml": junit_xml(
            comparison.results, suite_name="gatewaybench.compare"
        ),
    }
    for path, text in extra.items():
        write_atomic(path, text)
    return comparison.exit_code, [*paths, *extra]
