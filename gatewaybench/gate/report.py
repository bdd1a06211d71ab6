"""A gate's outputs: gate.html (the verdict per server x metric and every trial), summary.md
(also appended to a CI step summary, e.g. $GITHUB_STEP_SUMMARY, when the CLI names one),
gate.junit.xml and trials.csv."""

from __future__ import annotations

import csv
from pathlib import Path

from gatewaybench.gate import outputs
from gatewaybench.gate.compare import verdict_table
from gatewaybench.gate.outputs import Comparison, headline
from gatewaybench.gate.verdict import MetricResult, Trial, gate_exit_code
from gatewaybench.report.render import environment
from gatewaybench.report.tables import Table, TableCell
from gatewaybench.results.files import write_atomic
from gatewaybench.results.schema import read_manifest

METRIC_KEYS = ("latency_p50_ms", "latency_p95_ms", "cpu_ms_per_req", "plateau_rps")
TRIAL_COLUMNS = ("server", "side", "block", "position", *METRIC_KEYS, "fail_pct", "http_5xx",
                 "valid", "invalid_reason")  # fmt: skip


def trials_table(trials: list[tuple[str, Trial]]) -> Table:
    table = Table("Trials, in the order run", ["server", "block", "position", "side", *METRIC_KEYS,
                                              "fail %", "5xx", "valid"])  # fmt: skip
    for server, t in trials:
        cells = [
            TableCell(server, "rowhead"),
            TableCell(str(t.block)),
            TableCell(str(t.position)),
            TableCell(t.side),
        ]
        cells += [TableCell(f"{t.values[k]:.2f}") for k in METRIC_KEYS]
        valid = TableCell("yes" if t.valid else "no", "" if t.valid else "s3", t.invalid_reason)
        cells += [TableCell(f"{t.fail_pct:.2f}"), TableCell(str(t.http_5xx)), valid]
        table.rows.append(cells)
    return table


def render_gate_html(
    gate_dir: Path, results: list[MetricResult], trials: list[tuple[str, Trial]]
) -> str:
    manifest = read_manifest(gate_dir)
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


def write_outputs(
    gate_dir: Path,
    results: list[MetricResult],
    trials: list[tuple[str, Trial]],
    seconds: float,
    step_summary: Path | None = None,
) -> list[Path]:
    """summary.md, gate.junit.xml, gate.html and trials.csv; summary.md's text is appended to
    `step_summary` too (the CI's job summary file) when given."""
    title = "gatewaybench gate: candidate vs base"
    summary = (
        outputs.markdown_summary(results, title=title)
        if results
        else f"# {title}\n\nNo verdict: the gate did not finish.\n"
    )
    files = {
        gate_dir / "summary.md": summary,
        gate_dir / "gate.junit.xml": outputs.junit_xml(results, duration_s=seconds),
        gate_dir / "gate.html": render_gate_html(gate_dir, results, trials),
    }
    for path, text in files.items():
        write_atomic(path, text)
    _write_trials(gate_dir / "trials.csv", trials)
    if step_summary is not None:
        with step_summary.open("a", encoding="utf-8") as fh:
            fh.write(summary + "\n")
    return [*files, gate_dir / "trials.csv"]


def _write_trials(path: Path, trials: list[tuple[str, Trial]]) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(TRIAL_COLUMNS)
        for server, t in trials:
            v = t.values
            metrics = [f"{v[k]:.4g}" for k in TRIAL_COLUMNS[4:8]]
            guards = [f"{t.fail_pct:.3g}", t.http_5xx, t.valid, t.invalid_reason]
            writer.writerow([server, t.side, t.block, t.position, *metrics, *guards])
    tmp.replace(path)
