"""gate.html: the verdict per server x metric and every trial, self-contained."""

from __future__ import annotations

import json
from pathlib import Path

from gatewaybench.gate.outputs import Comparison, headline
from gatewaybench.gate.runs import verdict_table
from gatewaybench.gate.verdict import MetricResult, Trial, gate_exit_code
from gatewaybench.report.render import environment
from gatewaybench.report.tables import Cell, Table

METRIC_KEYS = ("latency_p50_ms", "latency_p95_ms", "cpu_ms_per_req", "plateau_rps")


def trials_table(trials: list[tuple[str, Trial]]) -> Table:
    table = Table("Trials, in the order run", ["server", "block", "position", "side", *METRIC_KEYS,
                                              "fail %", "5xx", "valid"])  # fmt: skip
    for server, t in trials:
        cells = [Cell(server, "rowhead"), Cell(str(t.block)), Cell(str(t.position)), Cell(t.side)]
        cells += [Cell(f"{t.values[k]:.2f}") for k in METRIC_KEYS]
        valid = Cell("yes" if t.valid else "no", "" if t.valid else "s3", t.invalid_reason)
        cells += [Cell(f"{t.fail_pct:.2f}"), Cell(str(t.http_5xx)), valid]
        table.rows.append(cells)
    return table


def render_gate_html(
    gate_dir: Path, results: list[MetricResult], trials: list[tuple[str, Trial]]
) -> str:
    manifest = json.loads((gate_dir / "manifest.json").read_text())
    comparison = Comparison(tuple(results), gate_exit_code(results))
    return (
        environment()
        .get_template("gate.html.j2")
        .render(
            headline=headline(results) if results else "no verdict",
            sides=manifest.get("sides", {}),
            status=manifest.get("status", "unknown"),
            seconds=manifest.get("gate_seconds", "?"),
            verdicts=verdict_table(comparison),
            trials=trials_table(trials),
        )
    )
