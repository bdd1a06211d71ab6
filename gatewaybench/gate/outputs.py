"""The gate's outputs: JUnit XML for CI test reports, a Markdown summary for
$GITHUB_STEP_SUMMARY, and the verdicts of `gatewaybench compare BASE CAND` in the same rows.

Outputs are deterministic: the same results give the same bytes (no clock is read here).
"""

from __future__ import annotations

import math
import re
import statistics
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gatewaybench.gate import stats
from gatewaybench.gate.verdict import (
    DEFAULT_THRESHOLDS,
    METRICS,
    GateThresholds,
    MetricResult,
    Verdict,
    describe_change,
    format_p,
    format_pct,
    gate_exit_code,
)

BOUND_LABEL = f"{100 * DEFAULT_THRESHOLDS.bound_confidence:g} % bound"
_LEGEND = (
    "Change: percent worse of the candidate against the base (negative: better); for "
    "requests/sec that is the change in time per request. Noise: median base-vs-base "
    "difference."
)
# The median's CI is distribution-free and wide at a few pairs; 'no change' is decided by this
# bound instead, so the table must show it or a pass looks contradicted by its own CI.
_BOUND_LEGEND = (
    f" {BOUND_LABEL}: one-sided upper confidence bound of the mean paired change; 'no change' "
    f"needs it below the {DEFAULT_THRESHOLDS.regress_pct:g} % threshold."
)

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
    results: Sequence[MetricResult], title: str = "gatewaybench gate", count_label: str = "pairs"
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
    lines += ["", _LEGEND + (_BOUND_LEGEND if with_bound else "")]
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


# server -> metric -> one value per repeat
RunValues = Mapping[str, Mapping[str, Sequence[float]]]


@dataclass(frozen=True)
class Comparison:
    results: tuple[MetricResult, ...]
    exit_code: int  # 0 no regression, 1 regression, 3 inconclusive


def compare_runs_verdicts(
    base_values: RunValues,
    cand_values: RunValues,
    thresholds: GateThresholds = DEFAULT_THRESHOLDS,
    directions: Mapping[str, bool] = METRICS,
    confidence: float = 0.95,
) -> Comparison:
    """Two independent runs (no pairing): per server and metric the change of the geometric
    means with a Welch t-interval on log values, and a mark.

    Marks, with the interval in percent worse, I = [low, high]:
      worse            I lies entirely above +warn_pct
      better           I lies entirely below -warn_pct
      no change        I lies entirely within [-warn_pct, +warn_pct] (equivalence shown)
      not significant  otherwise, and always with a single repeat on a side (no interval)
    Verdicts: regression when I lies entirely above +regress_pct; inconclusive when the point
    estimate is worse than regress_pct but I does not show it, or a side has no data; warn for
    any other "worse"; better for "better"; no change otherwise.
    """
    results = []
    servers = list(dict.fromkeys([*base_values, *cand_values]))
    for server in servers:
        base, cand = base_values.get(server, {}), cand_values.get(server, {})
        for metric in (m for m in directions if m in base or m in cand):
            row = _compare_one(
                server,
                metric,
                _positive(base.get(metric, ())),
                _positive(cand.get(metric, ())),
                higher_is_better=directions[metric],
                t=thresholds,
                confidence=confidence,
            )
            results.append(row)
    return Comparison(tuple(results), gate_exit_code(results))


def _positive(values: Sequence[float]) -> list[float]:
    """Repeats with a usable value; a missing repeat (NaN) or zero cannot enter a log."""
    return [v for v in values if math.isfinite(v) and v > 0]


def _compare_one(
    server: str,
    metric: str,
    base: list[float],
    cand: list[float],
    *,
    higher_is_better: bool,
    t: GateThresholds,
    confidence: float,
) -> MetricResult:
    nan = math.nan
    if not base or not cand:
        side = "base" if not base else "candidate"
        message = f"missing: no {metric} for {server} in the {side} run"
        return MetricResult(
            server, metric, Verdict.INCONCLUSIVE, nan, nan, nan, nan, 0, nan, message
        )
    sign = -1.0 if higher_is_better else 1.0
    log_a, log_b = [math.log(v) for v in base], [math.log(v) for v in cand]
    shift = sign * (statistics.fmean(log_b) - statistics.fmean(log_a))
    change = stats.percent_worse(shift)
    repeats = min(len(base), len(cand))
    counts = f"{len(base)} vs {len(cand)} repeats"
    if repeats < 2:
        verdict = Verdict.INCONCLUSIVE if change > t.regress_pct else Verdict.NO_CHANGE
        beyond = f", beyond the {t.regress_pct:g} % threshold" if change > t.regress_pct else ""
        message = f"not significant: {describe_change(change)}{beyond}; {counts}, no interval"
        return MetricResult(server, metric, verdict, change, nan, nan, nan, repeats, nan, message)
    welch = stats.welch_interval(log_a, log_b, confidence)
    ends = sorted(stats.percent_worse(sign * x) for x in (welch.low, welch.high))
    mark, verdict = _judge_interval(change, ends[0], ends[1], t)
    message = (
        f"{mark}: {describe_change(change)}, {100 * confidence:g} % CI "
        f"{format_pct(ends[0])} … {format_pct(ends[1])} (Welch on logs, {counts})"
    )
    return MetricResult(
        server=server,
        metric=metric,
        verdict=verdict,
        median_change_pct=change,
        ci_low_pct=ends[0],
        ci_high_pct=ends[1],
        p_value=welch.p_two_sided,
        pairs=repeats,
        noise_pct=nan,
        message=message,
    )


def _judge_interval(
    change: float, low: float, high: float, t: GateThresholds
) -> tuple[str, Verdict]:
    if low > t.warn_pct:
        mark = "worse"
    elif high < -t.warn_pct:
        mark = "better"
    elif low >= -t.warn_pct and high <= t.warn_pct:
        mark = "no change"
    else:
        mark = "not significant"
    if low > t.regress_pct:
        return mark, Verdict.REGRESSION
    if change > t.regress_pct:
        return mark, Verdict.INCONCLUSIVE
    verdicts = {"worse": Verdict.WARN, "better": Verdict.BETTER}
    return mark, verdicts.get(mark, Verdict.NO_CHANGE)
