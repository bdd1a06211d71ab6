"""The multi-run report (`gatewaybench report A B ...`, and the HTML of `gatewaybench compare`):
several run directories side by side, the same tables per run, the difference per cell against
the first (base) run, and overlaid curves (colour = server, line style = run). Its files keep
their documented names, compare.html and compare.md."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from gatewaybench.analysis.summary import Pivot, pivot
from gatewaybench.report import figures
from gatewaybench.report.data import RunData, load_run
from gatewaybench.report.render import data_uri, environment
from gatewaybench.report.tables import Table, TableCell, severity
from gatewaybench.results.files import write_atomic

METRICS = (("fail_pct", "Failure %", ".1f"), ("rps", "Requests/sec", ".1f"),
           ("p95_ms", "p95 latency (ms)", ".0f"))  # fmt: skip


def _mean(p: Pivot, server: str, users: int) -> float:
    cell = p.cell(server, users)
    return math.nan if cell is None or cell.value.n == 0 else cell.value.mean


def multirun_table(runs: list[RunData], column: str, caption: str, fmt: str) -> Table:
    """Each run's seed-table cells (marked by the seed tables' one rule), and under every run
    after the first its difference to the first."""
    users = sorted({int(u) for run in runs for u in run.steps["users"]})
    servers = list(dict.fromkeys(s for run in runs for s in run.servers))
    table = Table(caption, ["server", "run", *[str(u) for u in users]])
    pivots = [pivot(run.steps, column) for run in runs]
    for server in servers:
        for index, (run, p) in enumerate(zip(runs, pivots, strict=True)):
            cells = [TableCell(server, "rowhead"), TableCell(run.run_id)]
            deltas = [TableCell(server, "rowhead"), TableCell(f"Δ {run.run_id} - base")]
            for u in users:
                value = _mean(p, server, u)
                css = severity(value) if column == "fail_pct" and not math.isnan(value) else ""
                cells.append(TableCell(p.text(server, u, fmt, with_ci=False), css))
                deltas.append(TableCell(_delta(value, _mean(pivots[0], server, u), fmt), "delta"))
            table.rows.append(cells)
            if index > 0:
                table.rows.append(deltas)
    legend = sorted({line for p in pivots for line in p.legend()})
    table.note = " ".join([*legend, "Δ rows: this run minus the base (first) run, and in percent."])
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


def render_multirun(
    run_dirs: list[Path],
    out_dir: Path,
    verdict_md: str = "",
    verdict_table: Table | None = None,
) -> list[Path]:
    """compare.html and compare.md; the verdicts of `gatewaybench compare` lead both. The
    closed model's steps only (users): open-model steps, by arrivals/s, are in each run's own
    report."""
    runs = [load_run(p).of_model("closed") for p in run_dirs]
    context: dict[str, Any] = {
        "runs": runs,
        "verdict_md": verdict_md,
        "verdict_table": verdict_table,
        "tables": [multirun_table(runs, c, f"{label} by server x users", f)
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
        out_dir / "compare.html": env.get_template("multirun.html.j2").render(**context),
        out_dir / "compare.md": env.get_template("multirun.md.j2").render(**context),
    }
    for out_path, text in outputs.items():
        write_atomic(out_path, text)
    return list(outputs)
