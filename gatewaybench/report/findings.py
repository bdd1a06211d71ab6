"""A few plain sentences computed from the data: who held how many users, and the caveats."""

from __future__ import annotations

import pandas as pd

from gatewaybench.analysis import crossover
from gatewaybench.analysis.summary import caveats, configuration_caveats
from gatewaybench.report.data import RunData

HELD_ALL = "every step was held"


def _first_failing_step(steps: pd.DataFrame, fail_pct: float, slo_ms: float) -> str:
    for row in steps.sort_values("users").to_dict("records"):
        if row["status"] != "ok":
            return f"at {row['users']} users the step did not finish"
        if not row["valid"]:
            return f"at {row['users']} users the step was invalid ({row['invalid_reason']})"
        if float(row["fail_pct"]) >= fail_pct:
            return f"at {row['users']} users {float(row['fail_pct']):.1f} % of requests failed"
        if float(row["p95_ms"]) > slo_ms:
            return f"at {row['users']} users p95 was {float(row['p95_ms']):.0f} ms"
    return HELD_ALL


def _main_cause(failures: pd.DataFrame, server: str) -> str:
    if failures.empty:
        return ""
    mine = failures[failures["server"] == server]
    if mine.empty:
        return ""
    totals: dict[tuple[str, str], int] = {}
    for row in mine.to_dict("records"):
        key = (str(row["source"]), str(row["cause"]))
        totals[key] = totals.get(key, 0) + int(row["count"])
    (source, cause), count = max(totals.items(), key=lambda kv: kv[1])
    share = 100 * count / sum(totals.values())
    return f" Most failures ({share:.0f} %) came from {source}: {cause}."


def server_sentences(run: RunData) -> list[str]:
    t = run.thresholds
    limits = f"below {t['fail_pct']:g} % failures and p95 ≤ {t['slo_ms']:g} ms"
    out = []
    for cap in run.capacities():
        steps = run.steps[(run.steps["server"] == cap.server) & (run.steps["repeat"] == 1)]
        if cap.capacity.mean > 0:
            held = f"{cap.server} held {cap.capacity.text()} users {limits}"
        else:
            held = f"{cap.server} did not hold even the first step {limits}"
        where = _first_failing_step(steps, t["fail_pct"], t["slo_ms"])
        if where == HELD_ALL:
            where = "that is the largest step tested, so its limit lies beyond"
        plateau = (
            f"; it peaked at {cap.plateau.text('.0f')} successful req/s" if cap.plateau.n else ""
        )
        out.append(f"{held}{plateau}; {where}." + _main_cause(run.failures, cap.server))
    return out


def run_crossover(run: RunData) -> crossover.Crossover | None:
    """The run's crossover under its own thresholds; None without the upstream-wait dimension."""
    t = run.thresholds
    return crossover.crossover(run.steps, t["fail_pct"], t["slo_ms"])


def crossover_sentences(run: RunData) -> list[str]:
    cx = run_crossover(run)
    return crossover.sentences(cx) if cx is not None else []


def findings(run: RunData) -> tuple[list[str], list[str]]:
    """(sentences, caveats) for the top of a report; the crossover, when the run has one, is
    the headline and comes first."""
    if run.steps.empty:
        return ["No step finished, so there is nothing to conclude."], []
    notes = caveats(run.steps) + configuration_caveats(run.manifest)
    status = run.manifest.get("status")
    if status != "complete":
        notes.insert(0, f"The run is {status}: this report shows only the steps that finished.")
    return crossover_sentences(run) + server_sentences(run), notes
