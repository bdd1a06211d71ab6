"""What the gate and `gatewaybench compare` write from their results: JUnit XML for CI test
reports, a Markdown summary (also appended to a CI step summary, e.g. $GITHUB_STEP_SUMMARY, when
the CLI names one) and the verdict table of the HTML pages. The gate's own directory gets
summary.md, gate.junit.xml, gate.html (the verdict per server x metric and every trial) and
trials.csv (write_outputs); compare's files are written by gate.compare.write_comparison.

Outputs are deterministic: the same results give the same bytes (no clock is read here).
"""

from __future__ import annotations

import csv
import math
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gatewaybench.gate.verdict import (
    DEFAULT_THRESHOLDS,
    Design,
    MetricResult,
    Trial,
    Verdict,
    format_p,
    format_pct,
    gate_exit_code,
)
from gatewaybench.report.render import environment
from gatewaybench.report.tables import Table, TableCell
from gatewaybench.results.files import write_atomic
from gatewaybench.results.schema import read_manifest

BOUND_LABEL = f"{100 * DEFAULT_THRESHOLDS.bound_confidence:g} % bound"
_CHANGE_LEGEND = (
    "Change: percent worse of the candidate against the base (negative: better); for "
    "requests/sec that is the change in time per request."
)
NOISE_LEGEND = {
    Design.SEQUENTIAL: "Noise: median base-vs-base difference.",
    Design.DUET: "Noise: median deviation of the pairs' changes from their median change.",
}


def _legend(with_bound: bool, regress_pct: float, design: Design) -> str:
    """The median's CI is distribution-free and wide at a few pairs; 'no change' is decided by
    the bound instead, so the table must show it or a pass looks contradicted by its own CI."""
    text = f"{_CHANGE_LEGEND} {NOISE_LEGEND[design]}"
    if with_bound:
        text += (
            f" {BOUND_LABEL}: one-sided upper confidence bound of the mean paired change; "
            f"'no change' needs it below the {regress_pct:g} % threshold."
        )
    return text


INVALID_XML_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")

BADGES = {
    Verdict.REGRESSION: "❌ regression",
    Verdict.INCONCLUSIVE: "⚠️ inconclusive",
    Verdict.NOT_JUDGED: "⚪ not judged",
    Verdict.WARN: "🟡 warn",
    Verdict.BETTER: "🟢 better",
    Verdict.NO_CHANGE: "✅ no change",
}


def junit_xml(
    results: Sequence[MetricResult],
    suite_name: str = "gatewaybench.gate",
    duration_s: float = 0.0,
    timestamp: str | None = None,
) -> str:
    """One testcase per result (classname = server, name = metric): a regression is a failure,
    an inconclusive result an error (the gate could not test), a metric not judged is skipped,
    anything else passes with its message as system-out."""
    counts = Counter(r.verdict for r in results)
    attrs = {
        "name": suite_name,
        "tests": str(len(results)),
        "failures": str(counts[Verdict.REGRESSION]),
        "errors": str(counts[Verdict.INCONCLUSIVE]),
        "skipped": str(counts[Verdict.NOT_JUDGED]),
        "time": f"{duration_s:.3f}",
    }
    root = ET.Element("testsuites", attrs)
    suite = ET.SubElement(
        root, "testsuite", attrs | ({"timestamp": timestamp} if timestamp else {})
    )
    for result in results:
        case = ET.SubElement(
            suite, "testcase", {"classname": result.server, "name": result.metric, "time": "0"}
        )
        _outcome(case, result)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, "unicode") + "\n"


def _outcome(case: ET.Element, result: MetricResult) -> None:
    if result.verdict == Verdict.REGRESSION:
        tag = "failure"
    elif result.verdict == Verdict.INCONCLUSIVE:
        tag = "error"
    elif result.verdict == Verdict.NOT_JUDGED:
        ET.SubElement(case, "skipped", {"message": _xml_safe(result.message)})
        return
    else:
        ET.SubElement(case, "system-out").text = _xml_safe(f"{result.verdict}: {result.message}")
        return
    attrs = {"message": _xml_safe(result.message), "type": str(result.verdict)}
    ET.SubElement(case, tag, attrs).text = _xml_safe(_details(result))


def _xml_safe(text: str) -> str:
    """ElementTree escapes markup but writes control characters as they are, which XML 1.0
    forbids (a stray one from a server's error text would make the whole report unreadable)."""
    return INVALID_XML_RE.sub("\ufffd", text)


def _details(r: MetricResult) -> str:
    bound = f"{BOUND_LABEL}: {format_pct(r.bound_pct)}\n" if math.isfinite(r.bound_pct) else ""
    return (
        f"{r.server} {r.metric}: {r.verdict}\n"
        f"median change: {format_pct(r.median_change_pct)} "
        f"(CI {format_pct(r.ci_low_pct)} … {format_pct(r.ci_high_pct)})\n"
        f"{bound}"
        f"p: {format_p(r.p_value)}, pairs: {r.pairs}, "
        f"base-vs-base noise: {format_pct(r.noise_pct, signed=False)}\n"
        f"{r.message}"
    )


def headline(results: Sequence[MetricResult]) -> str:
    code = gate_exit_code(results)
    return {1: "❌ regression", 3: "⚠️ inconclusive"}.get(code, "✅ no regression")


def markdown_summary(
    results: Sequence[MetricResult],
    title: str = "gatewaybench gate",
    count_label: str = "pairs",
    *,
    regress_pct: float = DEFAULT_THRESHOLDS.regress_pct,
    design: Design = Design.SEQUENTIAL,
) -> str:
    """A headline verdict, a table of every result and the messages of those worth reading.
    The bound column appears when some result was judged on pairs (the gate, not compare)."""
    counts = Counter(r.verdict for r in results)
    tally = ", ".join(f"{counts[v]} {v.value.replace('_', ' ')}" for v in BADGES if counts[v])
    with_bound = any(math.isfinite(r.bound_pct) for r in results)
    bound_head, bound_rule = (f" {BOUND_LABEL} |", " ---: |") if with_bound else ("", "")
    lines = [
        f"## {_cell(title)}",
        "",
        f"**{headline(results)}** ({tally or 'no results'})",
        "",
        f"| server | metric | change (median, CI) |{bound_head} p | {count_label} | noise "
        "| verdict |",
        f"| --- | --- | --- |{bound_rule} --- | ---: | ---: | --- |",
    ]
    lines += [_row(r, with_bound) for r in results]
    lines += ["", _legend(with_bound, regress_pct, design)]
    notable = [r for r in results if r.verdict != Verdict.NO_CHANGE]
    if notable:
        lines.append("")
        lines += [f"- **{_cell(r.server)} {_cell(r.metric)}**: {_cell(r.message)}" for r in notable]
    return "\n".join(lines) + "\n"


def _row(r: MetricResult, with_bound: bool) -> str:
    change = format_pct(r.median_change_pct)
    if not math.isnan(r.ci_low_pct):
        change += f" ({format_pct(r.ci_low_pct)} … {format_pct(r.ci_high_pct)})"
    bound = [format_pct(r.bound_pct)] if with_bound else []
    cells = [
        r.server, r.metric, change, *bound, format_p(r.p_value),
        str(r.pairs) if r.pairs else "n/a", format_pct(r.noise_pct, signed=False),
        BADGES[r.verdict],
    ]  # fmt: skip
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def _cell(text: str) -> str:
    """Markdown table-safe: a pipe would end the cell, a newline the row."""
    return text.replace("|", "\\|").replace("\n", " ")


VERDICT_CSS = {"regression": "s4", "inconclusive": "s2", "warn": "s1", "better": "s0",
               "no_change": "s0"}  # fmt: skip


def verdict_table(results: Sequence[MetricResult]) -> Table:
    """The gate's results carry the bound that decides 'no change'; compare's do not."""
    with_bound = any(math.isfinite(r.bound_pct) for r in results)
    table = Table(
        "Candidate vs base per server x metric (percent worse; negative is better)",
        ["server", "metric", "change", "interval", *([BOUND_LABEL] if with_bound else []), "p",
         "verdict", "why"],
    )  # fmt: skip
    for r in results:
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


METRIC_KEYS = ("latency_p50_ms", "latency_p95_ms", "cpu_ms_per_req", "plateau_rps")
TRIAL_COLUMNS = ("server", "side", "block", "position", *METRIC_KEYS, "fail_pct", "http_5xx",
                 "valid", "invalid_reason", "app_cpus", "started_first")  # fmt: skip


def trials_table(trials: list[tuple[str, Trial]]) -> Table:
    table = Table("Trials, in the order run", ["server", "block", "position", "side", *METRIC_KEYS,
                                              "fail %", "5xx", "valid", "app CPUs"])  # fmt: skip
    for server, t in trials:
        cells = [
            TableCell(server, "rowhead"),
            TableCell(str(t.block)),
            TableCell(str(t.position)),
            TableCell(t.side),
        ]
        cells += [TableCell(f"{t.values[k]:.2f}") for k in METRIC_KEYS]
        valid = TableCell("yes" if t.valid else "no", "" if t.valid else "s3", t.invalid_reason)
        cells += [TableCell(f"{t.fail_pct:.2f}"), TableCell(str(t.http_5xx)), valid,
                  TableCell(t.app_cpus or "any")]  # fmt: skip
        table.rows.append(cells)
    return table


def _design_text(gate: dict[str, object]) -> str:
    """How the trials ran, from the manifest (a gate from before designs: A B B A)."""
    if gate.get("design") == "duet":
        pinning = gate.get("pinning")
        if pinning is None:
            pinned = "pinning not recorded"
        else:
            pinned = "nothing pinned" if pinning == "none" else f"pinned: {pinning}"
        return f"both sides at once ({gate.get('pairs', '?')} duet trials, {pinned})"
    return "one side at a time in A B B A blocks"


def render_gate_html(
    gate_dir: Path, results: list[MetricResult], trials: list[tuple[str, Trial]]
) -> str:
    manifest = read_manifest(gate_dir)
    return (
        environment()
        .get_template("gate.html.j2")
        .render(
            headline=headline(results) if results else "no verdict",
            sides=manifest.get("sides", {}),
            design=_design_text(manifest.get("gate", {})),
            status=manifest.get("status", "unknown"),
            seconds=manifest.get("gate_seconds", "?"),
            verdicts=verdict_table(results),
            trials=trials_table(trials),
        )
    )


@dataclass(frozen=True)
class GateReport:
    """Where the summary also goes, and what an inconclusive gate does to the CI check."""

    step_summary: Path | None = None  # the CI's job summary file, appended to
    inconclusive_fails: bool = True  # --on-inconclusive fail (exit 3) or warn (exit 0)
    regress_pct: float = DEFAULT_THRESHOLDS.regress_pct  # the gate's, for the legend
    design: Design = Design.SEQUENTIAL


def inconclusive_policy(results: Sequence[MetricResult], fails: bool) -> str:
    """The summary's last line: what an inconclusive gate does to the check, and how to change
    it; when this gate was inconclusive and only warns, why and what to do."""
    if fails:
        return (
            "An inconclusive gate fails this check (`--on-inconclusive fail`, the default): "
            "re-run the job for an answer, or pass `--on-inconclusive warn` to let an "
            "inconclusive gate pass with a warning."
        )
    if results and gate_exit_code(results) == 3:
        why = "; ".join(
            f"{r.server} {r.metric}: {r.message}"
            for r in results
            if r.verdict == Verdict.INCONCLUSIVE
        )
        return (
            f"⚠️ **Inconclusive, reported as a warning: this check passes** "
            f"(`--on-inconclusive warn`). Why: {_cell(why)}. Re-run the job for an answer."
        )
    return (
        "An inconclusive gate only warns here (`--on-inconclusive warn`): the check passes "
        "with the reason in this summary."
    )


def write_outputs(
    gate_dir: Path,
    results: list[MetricResult],
    trials: list[tuple[str, Trial]],
    seconds: float,
    report: GateReport = GateReport(),
) -> list[Path]:
    """summary.md, gate.junit.xml, gate.html and trials.csv; summary.md's text is appended to
    the CI's job summary file too when the report names one."""
    title = "gatewaybench gate: candidate vs base"
    summary = (
        (
            markdown_summary(results, title=title)
            if results
            else f"# {title}\n\nNo verdict: the gate did not finish.\n"
        )
        + "\n"
        + inconclusive_policy(results, report.inconclusive_fails)
        + "\n"
    )
    files = {
        gate_dir / "summary.md": summary,
        gate_dir / "gate.junit.xml": junit_xml(results, duration_s=seconds),
        gate_dir / "gate.html": render_gate_html(gate_dir, results, trials),
    }
    for path, text in files.items():
        write_atomic(path, text)
    _write_trials(gate_dir / "trials.csv", trials)
    if report.step_summary is not None:
        with report.step_summary.open("a", encoding="utf-8") as fh:
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
            where = [t.app_cpus, t.started_first]
            writer.writerow([server, t.side, t.block, t.position, *metrics, *guards, *where])
    tmp.replace(path)
