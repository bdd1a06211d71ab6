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
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from gatewaybench.gate import stats
from gatewaybench.gate.outputs import junit_xml, markdown_summary, verdict_table
from gatewaybench.gate.verdict import (
    DEFAULT_THRESHOLDS,
    METRICS,
    GateThresholds,
    MetricResult,
    Verdict,
    describe_change,
    format_pct,
    gate_exit_code,
)
from gatewaybench.report.data import RunData, load_run
from gatewaybench.report.multirun import render_multirun
from gatewaybench.results.files import write_atomic

# server -> metric -> one value per repeat
RunValues = Mapping[str, Mapping[str, Sequence[float]]]


def sub_knee_users(base: RunData, cand: RunData, server: str) -> int | None:
    def users(run: RunData) -> set[int]:
        s = run.steps
        return {int(u) for u in s[(s["server"] == server) & (s["status"] == "ok")]["users"]}

    common = users(base) & users(cand)
    return min(common) if common else None


def run_values(run: RunData, users_at: Mapping[str, int | None]) -> RunValues:
    out: dict[str, dict[str, list[float]]] = {}
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


def compare_runs(base_dir: Path, cand_dir: Path) -> Comparison:
    # Users steps are what it compares: an open model's rate steps are left out.
    base, cand = (load_run(d).of_model("closed") for d in (base_dir, cand_dir))
    servers = list(dict.fromkeys([*base.servers, *cand.servers]))
    users_at = {s: sub_knee_users(base, cand, s) for s in servers}
    return compare_runs_verdicts(run_values(base, users_at), run_values(cand, users_at))


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
        verdict_table=verdict_table(comparison.results),
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
