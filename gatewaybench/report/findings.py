"""A few plain sentences computed from the data: who held how many users (and, in a run with
open-model steps, how many arrivals/s), and the caveats."""

from __future__ import annotations

import pandas as pd

from gatewaybench.analysis import crossover
from gatewaybench.analysis.capacity import LEVELS, Capacity, not_held
from gatewaybench.analysis.summary import (
    caveats,
    configuration_caveats,
    level_text,
    of_model,
)
from gatewaybench.report.data import RunData

HELD_ALL = "every step was held"
# What lies beyond the last step, when every step was held.
BEYOND = {
    "closed": "that is the largest step tested, so its limit lies beyond",
    "open": "that is the highest rate tested, so its limit lies beyond",
}


def _first_failing_step(
    steps: pd.DataFrame, fail_pct: float, slo_ms: float, model: str = "closed"
) -> str:
    for row in steps.sort_values(LEVELS[model][0]).to_dict("records"):
        why = not_held(row, fail_pct, slo_ms)
        if why:
            return f"at {level_text(row)} {why}"
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


def _sentence(run: RunData, cap: Capacity, model: str, limits: str) -> str:
    """One server's capacity sentence; `run` holds only the steps of `model`."""
    t = run.thresholds
    steps = run.steps[(run.steps["server"] == cap.server) & (run.steps["repeat"] == 1)]
    amount = cap.capacity.text() if model == "closed" else cap.capacity.text(".3g")
    if cap.capacity.mean > 0:
        held = f"{cap.server} held {amount} {LEVELS[model][1]} {limits}"
    else:
        held = f"{cap.server} did not hold even the first step {limits}"
    where = _first_failing_step(steps, t["fail_pct"], t["slo_ms"], model)
    if where == HELD_ALL:
        where = BEYOND[model]
    plateau = f"; it peaked at {cap.plateau.text('.0f')} successful req/s" if cap.plateau.n else ""
    return f"{held}{plateau}; {where}." + _main_cause(run.failures, cap.server)


def server_sentences(run: RunData) -> list[str]:
    """The closed model's: users held by each server."""
    t = run.thresholds
    limits = f"below {t['fail_pct']:g} % failures and p95 ≤ {t['slo_ms']:g} ms"
    closed = run.of_model("closed")
    return [_sentence(closed, cap, "closed", limits) for cap in run.capacities()]


def open_sentences(run: RunData) -> list[str]:
    """The open model's: arrivals/s held by each server."""
    t = run.thresholds
    limits = (
        f"(open model) below {t['fail_pct']:g} % failures and {t['fail_pct']:g} % drops and "
        f"p95 from the intended start ≤ {t['slo_ms']:g} ms"
    )
    opened = run.of_model("open")
    return [_sentence(opened, cap, "open", limits) for cap in run.open_capacities()]


def drop_caveats(steps: pd.DataFrame) -> list[str]:
    """One line per open-model step that dropped arrivals at the in-flight cap."""
    opened = of_model(steps, "open")
    if opened.empty:
        return []
    repeats = opened["repeat"].nunique() > 1
    out = []
    for rec in opened[opened["dropped"].fillna(0) > 0].to_dict("records"):
        which = f", repeat {rec['repeat']}" if repeats else ""
        out.append(
            f"{rec['server']} at {level_text(rec)}{which}: {int(rec['dropped'])} of "
            f"{int(rec['arrivals'])} arrivals dropped ({float(rec['drop_pct']):.1f} %) at "
            "--max-inflight"
        )
    return out


def run_crossover(run: RunData) -> crossover.Crossover | None:
    """The run's crossover (closed model) under its own thresholds; None without the
    upstream-wait dimension."""
    t = run.thresholds
    return crossover.crossover(of_model(run.steps, "closed"), t["fail_pct"], t["slo_ms"])


def crossover_sentences(run: RunData) -> list[str]:
    cx = run_crossover(run)
    return crossover.sentences(cx) if cx is not None else []


def findings(run: RunData) -> tuple[list[str], list[str]]:
    """(sentences, caveats) for the top of a report; the crossover, when the run has one, is
    the headline and comes first; the open model's sentences, when it ran, come last."""
    if run.steps.empty:
        return ["No step finished, so there is nothing to conclude."], []
    notes = caveats(run.steps) + drop_caveats(run.steps) + configuration_caveats(run.manifest)
    status = run.manifest.get("status")
    if status != "complete":
        notes.insert(0, f"The run is {status}: this report shows only the steps that finished.")
    return crossover_sentences(run) + server_sentences(run) + open_sentences(run), notes
