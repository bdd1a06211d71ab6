"""Render a run directory into report.html, summary.md and results.json (returns the paths).

Pure with respect to the run: it reads the directory and writes only these three files, never
raw data. Rendering twice gives byte-identical output.
"""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from gatewaybench.analysis import crossover
from gatewaybench.analysis.capacity import Capacity
from gatewaybench.analysis.summary import OPEN_TABLES
from gatewaybench.report import figures
from gatewaybench.report.data import RunData, load_run
from gatewaybench.report.findings import findings, run_crossover
from gatewaybench.report.tables import Table, TableCell, cells_table, records_table, seed_table
from gatewaybench.results.files import write_atomic

TEMPLATES = Path(__file__).resolve().parent / "templates"
# results.json's own layout, for readers outside gatewaybench (nothing here reads it back):
# bumped, like the run directory's (results/schema.py), when a key is removed, renamed or
# changes meaning; a key added needs no bump.
RESULTS_SCHEMA_VERSION = 1

FAILURE_COLUMNS = [
    ("server", "server", ""), ("repeat", "repeat", ""), ("users", "users", ""),
    ("kind", "kind", ""), ("count", "count", ".0f"), ("source", "source", ""),
    ("cause", "cause", ""), ("example", "example", ""), ("evidence", "evidence", ""),
]  # fmt: skip
AUDIT_COLUMNS = [
    ("server", "server", ""), ("repeat", "repeat", ""), ("users", "users", ""),
    ("votes_attempted", "attempted", ".0f"), ("votes_ok", "acknowledged (302)", ".0f"),
    ("votes_db", "counted in DB", ".0f"), ("votes_inflight", "in flight", ".0f"),
    ("integrity", "integrity", ""),
]  # fmt: skip
STEP_COLUMNS = [
    ("server", "server", ""), ("repeat", "repeat", ""), ("users", "users", ""),
    ("requests", "requests", ".0f"), ("fail_pct", "fail %", ".2f"), ("slow_pct", "slow %", ".1f"),
    ("rps", "req/s", ".1f"), ("p50_ms", "p50 ms", ".0f"), ("p95_ms", "p95 ms", ".0f"),
    ("p99_ms", "p99 ms", ".0f"), ("gen_cpu_pct", "Locust CPU %", ".0f"),
    ("littles_err_pct", "Little's law off %", ".1f"), ("xcheck", "nginx cross-check", ""),
    ("valid", "valid", ""), ("invalid_reason", "why invalid", ""),
]  # fmt: skip
# The open model's: its level is the arrival rate; drops, and latency from the intended start.
OPEN_FAILURE_COLUMNS = [("rate", "arrivals/s", "g") if c == "users" else (c, h, f)
                        for c, h, f in FAILURE_COLUMNS]  # fmt: skip
OPEN_STEP_COLUMNS = [
    ("server", "server", ""), ("repeat", "repeat", ""), ("rate", "arrivals/s", "g"),
    ("arrivals", "arrivals", ".0f"), ("dropped", "dropped", ".0f"), ("drop_pct", "drop %", ".2f"),
    ("requests", "requests", ".0f"), ("fail_pct", "fail %", ".2f"), ("rps", "req/s", ".1f"),
    ("p95_ms", "p95 service ms", ".0f"), ("intended_p50_ms", "p50 intended ms", ".0f"),
    ("intended_p95_ms", "p95 intended ms", ".0f"), ("intended_p99_ms", "p99 intended ms", ".0f"),
    ("lag_p99_ms", "dispatch lag p99 ms", ".1f"), ("gen_cpu_pct", "Locust CPU %", ".0f"),
    ("xcheck", "nginx cross-check", ""), ("valid", "valid", ""),
    ("invalid_reason", "why invalid", ""),
]  # fmt: skip
CLOSED_VS_OPEN = (
    "Per server that ran both load models, at the same achieved requests/sec: the closed "
    "model's p95 (solid) is what its users measured; the open model's p95 from the intended "
    "start (dashed) is what visitors arriving on their own schedule waited.",
    "A closed-model user sends nothing while waiting, so near saturation the closed model "
    "slows its own arrivals, and its latency can understate what arriving visitors wait: the "
    "gap between the lines.",
)


def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def data_uri(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


def seed_tables(run: RunData) -> list[Table]:
    """The closed model's, by server x users."""
    s = run.of_model("closed").steps
    return [
        seed_table(s, "fail_pct", "Failure % by server x users", ".1f", coloured=True),
        seed_table(s, "rps", "Requests/sec by server x users", ".1f"),
        seed_table(s, "p95_ms", "p95 latency (ms) by server x users", ".0f"),
    ]


def open_seed_tables(run: RunData) -> list[Table]:
    """The open model's, by server x arrivals/s: the terminal's tables, and the p95 service."""
    s = run.of_model("open").steps
    tables = [seed_table(s, column, title, fmt, coloured=column == "fail_pct", model="open")
              for column, title, fmt, _ in OPEN_TABLES]  # fmt: skip
    tables.append(seed_table(s, "p95_ms", "p95 service (ms) by server x arrivals/s", ".0f",
                             model="open"))  # fmt: skip
    return tables


def capacity_rows(caps: list[Capacity], model: str = "closed") -> list[dict[str, str]]:
    """Capacity as text: users held (closed), or arrivals/s held (open)."""
    below, fmt = ("the first step", ".0f") if model == "closed" else ("the first rate", ".3g")
    return [
        {"server": c.server,
         "capacity": f"below {below}" if c.capacity.mean == 0 else c.capacity.text(fmt),
         "plateau": c.plateau.text(".1f") if c.plateau.n else "n/a"}
        for c in caps
    ]  # fmt: skip


def crossover_table(cx: crossover.Crossover) -> Table:
    """The crossover as a report table: invalid cells styled and titled with their reasons."""
    model = crossover.table(cx)
    table = Table(model.caption, model.header, note=model.note)
    for variant, *texts in model.rows:
        cells = [TableCell(variant, "rowhead")]
        for wait, text in zip(cx.waits, texts, strict=True):
            p = cx.point(variant, wait)
            invalid = p is not None and p.invalid
            title = "; ".join(p.invalid_reasons) if p is not None else ""
            cells.append(TableCell(text, "invalid" if invalid else "", title))
        table.rows.append(cells)
    return table


def crossover_context(cx: crossover.Crossover | None) -> dict[str, Any] | None:
    if cx is None:
        return None
    return {"sentences": crossover.sentences(cx), "table": crossover_table(cx)}


def facts(run: RunData) -> dict[str, Any]:
    m = run.manifest
    phases = m.get("phases", [])
    return {
        "status": m.get("status"),
        "started": m.get("started_utc"),
        "finished": m.get("finished_utc", "(not finished)"),
        "duration_s": round(sum(float(p.get("seconds", 0)) for p in phases), 1),
        "versions": m.get("versions", {}),
        "machine": m.get("machine", {}),
        "git": m.get("git", {}),
        "servers": m.get("servers", {}),
        "spec": json.dumps(m.get("spec", {}), indent=2, sort_keys=True),
        "resolved": json.dumps(m.get("resolved", {}), indent=2, sort_keys=True),
    }


def raw_links(run: RunData) -> list[tuple[str, str]]:
    """Relative links: the report works wherever the run directory is copied."""
    names = ("manifest.json", "steps.csv", "failures.csv", "resources.csv", "logs/")
    links = [(name, name) for name in names if (run.path / name).exists()]
    for level in ("u", "a"):  # users (closed model), then arrivals/s (open model)
        for html in sorted(run.path.glob(f"raw/*/r*/{level}*/locust.html")):
            rel = html.relative_to(run.path).as_posix()
            server, repeat, tag = html.parts[-4:-1]
            links.append((f"Locust report: {server} {repeat} {tag}", rel))
    return links


SLOW_CLIENT_COLUMNS = [
    ("server", "server", ""), ("users", "users", ""), ("buffering", "nginx buffering", ""),
    ("p95_ms", "voters' p95 ms", ".0f"), ("fail_pct", "voters' fail %", ".2f"),
    ("uploads", "slow uploads", ".0f"), ("upload_p50_ms", "upload p50 ms", ".0f"),
    ("upload_fail_pct", "upload fail %", ".1f"), ("valid", "valid", ""),
]  # fmt: skip


def slow_clients_table(run: RunData) -> Table | None:
    """What slow uploaders cost the normal users (the voters), per cell and step, with nginx
    reading bodies first (buffering on) or passing them through as they trickle in (off)."""
    steps = run.steps
    if steps.empty or not (steps["uploads"].fillna(0) > 0).any():
        return None
    buffering = {c["label"]: c.get("request_buffering", True)
                 for c in run.manifest.get("spec", {}).get("cells", [])}  # fmt: skip
    rows = steps.assign(buffering=[("on" if buffering.get(s, True) else "off")
                                   for s in steps["server"]])  # fmt: skip
    load = run.manifest.get("spec", {}).get("load", {})
    caption = (
        f"Slow clients: {load.get('slow_upload_pct', '?')} % of users upload "
        f"{load.get('slow_upload_kb', '?')} KB at {load.get('slow_upload_kbps', '?')} KB/s; "
        "what the voters saw"
    )
    return records_table(rows, SLOW_CLIENT_COLUMNS, caption)


def _figure(f: figures.Figure) -> dict[str, Any]:
    return {"title": f.title, "alt": f.alt, "src": data_uri(f.svg), "wide": f.wide}


def open_context(run: RunData) -> dict[str, Any] | None:
    """The report's open-model section; None when no open-model step ran."""
    if not run.has_open:
        return None
    opened = run.of_model("open")
    both = figures.closed_vs_open_figure(run.steps)
    return {
        "tables": open_seed_tables(run),
        "capacity": capacity_rows(run.open_capacities(), "open"),
        "figures": [_figure(f) for f in figures.open_figures(opened.steps)],
        "comparison": {"figure": _figure(both), "sentences": CLOSED_VS_OPEN} if both else None,
        "failures": records_table(opened.failures, OPEN_FAILURE_COLUMNS,
                                  "Failures of open-model steps, attributed")
        if not opened.failures.empty else None,
        "steps": records_table(opened.steps, OPEN_STEP_COLUMNS, "Every open-model step"),
    }  # fmt: skip


def _context(run: RunData) -> dict[str, Any]:
    sentences, notes = findings(run)
    cx = run_crossover(run)
    headline = crossover_context(cx)
    if headline is not None:  # the findings open with the crossover: shown in its own block
        sentences = sentences[len(headline["sentences"]) :]
    closed = run.of_model("closed")  # everything but the open-model section
    figs = [figures.crossover_figure(cx)] if cx is not None else []
    figs += figures.run_figures(closed.steps, closed.resources)
    steps = closed.steps
    return {
        "run": run,
        "crossover": headline,
        "sentences": sentences,
        "caveats": notes,
        "seed_tables": seed_tables(run) if not steps.empty else [],
        "capacity": capacity_rows(run.capacities()),
        "open": open_context(run),
        "cells": cells_table(run.manifest),
        "thresholds": run.thresholds,
        "figures": [_figure(f) for f in figs],
        "failures": records_table(closed.failures, FAILURE_COLUMNS, "Failures, attributed")
        if not closed.failures.empty else None,
        "audit": records_table(steps, AUDIT_COLUMNS, "Vote integrity audit per step")
        if not steps.empty else None,
        "steps": records_table(steps, STEP_COLUMNS, "Every step") if not steps.empty else None,
        "slow_clients": slow_clients_table(closed),
        "facts": facts(run),
        "links": raw_links(run),
    }  # fmt: skip


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): _jsonable(v) for k, v in rec.items()} for rec in df.to_dict("records")]


def results_json(run: RunData) -> dict[str, Any]:
    """steps, failures, resources and capacity: the closed model's, as before the open model
    existed; open_*: the same for the open model's steps (empty lists when none ran)."""
    closed, opened = run.of_model("closed"), run.of_model("open")
    return {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "run_id": run.run_id,
        "status": run.manifest.get("status"),
        "thresholds": run.thresholds,
        "capacity": capacity_rows(run.capacities()),
        "open_capacity": capacity_rows(run.open_capacities(), "open"),
        "crossover": crossover.to_json(run_crossover(run)),
        "cells": {
            label: {k: v for k, v in facts.items() if k not in ("argv", "log_tail")}
            for label, facts in run.manifest.get("servers", {}).items()
        },
        "steps": _records(closed.steps),
        "failures": _records(closed.failures),
        "resources": _records(closed.resources),
        "open_steps": _records(opened.steps),
        "open_failures": _records(opened.failures),
        "open_resources": _records(opened.resources),
    }


def render_run(path: Path) -> list[Path]:
    run = load_run(path)
    env = environment()
    ctx = _context(run)
    outputs = {
        path / "report.html": env.get_template("report.html.j2").render(**ctx),
        path / "summary.md": env.get_template("report.md.j2").render(**ctx),
        path / "results.json": json.dumps(results_json(run), indent=2, sort_keys=True) + "\n",
    }
    for out_path, text in outputs.items():
        write_atomic(out_path, text)
    return list(outputs)
