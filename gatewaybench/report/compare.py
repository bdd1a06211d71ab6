"""Several run directories side by side: the same tables per run, the difference per cell
against the first (base) run, and overlaid curves (colour = server, line style = run)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from gatewaybench.report import figures
from gatewaybench.report.data import RunData, load_run
from gatewaybench.report.render import data_uri, environment
from gatewaybench.report.tables import Cell, Table, severity
from gatewaybench.results.files import write_atomic

METRICS = (("fail_pct", "Failure %", ".1f"), ("rps", "Requests/sec", ".1f"),
           ("p95_ms", "p95 latency (ms)", ".0f"))  # fmt: skip


def _cell_value(steps: pd.DataFrame, server: str, users: int, column: str) -> tuple[float, bool]:
    rows = steps[
        (steps["server"] == server) & (steps["users"] == users) & (steps["status"] == "ok")
    ]
    if rows.empty:
        return math.nan, False
    return float(rows[column].mean()), bool(rows["valid"].all())


def comparison_table(runs: list[RunData], column: str, caption: str, fmt: str) -> Table:
    users = sorted({int(u) for run in runs for u in run.steps["users"]})
    servers = list(dict.fromkeys(s for run in runs for s in run.servers))
    table = Table(caption, ["server", "run", *[str(u) for u in users]])
    base = runs[0]
    for server in servers:
        for index, run in enumerate(runs):
            cells = [Cell(server, "rowhead"), Cell(run.run_id)]
            deltas = [Cell(server, "rowhead"), Cell(f"Δ {run.run_id} - base")]
            for u in users:
                value, valid = _cell_value(run.steps, server, u, column)
                css = severity(value) if column == "fail_pct" and not math.isnan(value) else ""
                text = "n/a" if math.isnan(value) else format(value, fmt) + ("" if valid else "*")
                cells.append(Cell(text, css))
                base_value, _ = _cell_value(base.steps, server, u, column)
                deltas.append(Cell(_delta(value, base_value, fmt), "delta"))
            table.rows.append(cells)
            if index > 0:
                table.rows.append(deltas)
    table.note = "* invalid step. Δ rows: this run minus the base (first) run, and in percent."
    return table


def _delta(value: float, base: float, fmt: str) -> str:
    if math.isnan(value) or math.isnan(base):
        return "n/a"
    diff = value - base
    pct = f" ({100 * diff / base:+.0f} %)" if base else ""
    return f"{diff:+{fmt}}{pct}"


def overlay_figure(runs: list[RunData], column: str, title: str, ylabel: str) -> figures.Figure:
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for run, style in zip(runs, figures.LINESTYLES * 4, strict=False):
        steps = run.steps[run.steps["status"] == "ok"]
        for server in run.servers:
            data = steps[steps["server"] == server].groupby("users")[column].mean()
            ax.plot(data.index.to_numpy(), data.to_numpy(), linestyle=style, marker="o",
                    markersize=3, color=figures.color_of(server),
                    label=f"{server} ({run.run_id})")  # fmt: skip
    ax.set(title=title, xlabel="users", ylabel=ylabel)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=6)
    alt = f"{title}: colour per server, line style per run (solid = base)"
    return figures.Figure(column, title, alt, figures.to_svg(fig))


def render_comparison(
    run_dirs: list[Path],
    out_dir: Path,
    verdict_md: str = "",
    verdict_table: Table | None = None,
) -> list[Path]:
    """compare.html and compare.md; the verdicts of `gatewaybench compare` lead both."""
    runs = [load_run(p) for p in run_dirs]
    context: dict[str, Any] = {
        "runs": runs,
        "verdict_md": verdict_md,
        "verdict_table": verdict_table,
        "tables": [comparison_table(runs, c, f"{label} by server x users", f)
                   for c, label, f in METRICS],
        "figures": [
            {"alt": f.alt, "src": data_uri(f.svg)}
            for f in (overlay_figure(runs, "rps", "Requests/sec vs users", "requests per second"),
                      overlay_figure(runs, "fail_pct", "Failure % vs users", "failed requests (%)"),
                      overlay_figure(runs, "p95_ms", "p95 latency vs users", "ms"))
        ],
    }  # fmt: skip
    out_dir.mkdir(parents=True, exist_ok=True)
    env = environment()
    outputs = {
        out_dir / "compare.html": env.get_template("compare.html.j2").render(**context),
        out_dir / "compare.md": env.get_template("compare.md.j2").render(**context),
    }
    for target, text in outputs.items():
        write_atomic(target, text)
    return list(outputs)
