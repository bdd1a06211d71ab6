"""Table models for reports: plain data (header, rows of cells), rendered by templates."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from gatewaybench.analysis.summary import NOT_RUN_CELL, PivotCell, pivot, plain_text

SEVERITY_LIMITS = (0.0, 1.0, 5.0, 20.0)  # failure %: s0 = none ... s4 = 20 % and more


@dataclass(frozen=True)
class TableCell:
    text: str
    css: str = ""
    title: str = ""


@dataclass
class Table:
    caption: str
    header: list[str]
    rows: list[list[TableCell]] = field(default_factory=list)
    note: str = ""


def severity(fail_pct: float) -> str:
    if math.isnan(fail_pct):
        return "failed"
    level = sum(fail_pct > limit for limit in SEVERITY_LIMITS)
    return f"s{level}"


def _number(value: Any, fmt: str) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return "n/a" if math.isnan(number) else format(number, fmt)


def seed_table(steps: pd.DataFrame, column: str, caption: str, fmt: str, *,
               coloured: bool = False, model: str = "closed") -> Table:  # fmt: skip
    """server (rows) x level (columns: users, or the open model's arrivals/s) from
    analysis.summary.pivot, the terminal's pivot: the same cells marked invalid or FAIL;
    repeats averaged, and the caption says so."""
    p = pivot(steps, column, model)
    table = Table(caption + p.caption_suffix(with_ci=False), ["server", *p.headers])
    for server in p.servers:
        cells = [TableCell(server, "rowhead")]
        cells += [_seed_cell(p.cell(server, u), fmt, coloured) for u in p.levels]
        table.rows.append(cells)
    table.note = " ".join(p.legend())
    return table


def _seed_cell(cell: PivotCell | None, fmt: str, coloured: bool) -> TableCell:
    if cell is None:
        return TableCell(NOT_RUN_CELL)
    text = cell.text(fmt, with_ci=False)
    if cell.failed:
        return TableCell(text, "failed", cell.reasons)
    css = severity(cell.fail_pct) if coloured else ""
    if cell.invalid:
        return TableCell(text, f"{css} invalid".strip(), cell.reasons)
    return TableCell(text, css)


def records_table(df: pd.DataFrame, columns: list[tuple[str, str, str]], caption: str) -> Table:
    """Rows of a DataFrame, selected columns as (column, heading, format)."""
    table = Table(caption, [heading for _, heading, _ in columns])
    for rec in df.to_dict("records"):
        table.rows.append([TableCell(_number(rec.get(c), f) if f else plain_text(rec.get(c)))
                           for c, _, f in columns])  # fmt: skip
    return table


CELL_HEADER = ["cell", "server", "interface", "views", "db connections", "driver (reported)",
               "workers x threads", "max requests in flight", "pool / worker",
               "max DB connections", "status"]  # fmt: skip


def cells_table(manifest: dict[str, Any]) -> Table:
    """What each cell ran under the run's one budget, with the driver the running app reported.
    Older manifests (before variants existed) read as the seed: sync views, a connection per
    request, psycopg2 as configured."""
    resolved = manifest.get("resolved", {})
    budget = resolved.get("budget", {})
    caption = "Cells as run"
    if budget:
        caption += (
            f": budget {budget.get('processes')} workers x {budget.get('threads')} threads per "
            f"server; PostgreSQL max_connections {resolved.get('pg_max_connections', '?')}"
        )
    table = Table(caption, list(CELL_HEADER))
    servers = manifest.get("servers", {})
    order = [c["label"] for c in manifest.get("spec", {}).get("cells", []) if c["label"] in servers]
    for label in [*order, *(k for k in servers if k not in order)]:
        s = servers[label]
        runtime = s.get("runtime") or {}
        driver = runtime.get("driver")
        driver_text = (
            f"{driver} {runtime.get('driver_version', '')}".strip()
            if driver
            else f"{s.get('driver_configured', 'psycopg2')} (configured; not reported)"
        )
        threads = s.get("threads", "1")
        table.rows.append(
            [
                TableCell(label, "rowhead"),
                TableCell(str(s.get("server_name", label))),
                TableCell(str(s.get("interface", ""))),
                TableCell(str(runtime.get("views", s.get("views", "sync")))),
                TableCell(str(s.get("db", "close"))),
                TableCell(driver_text),
                TableCell(f"{s.get('processes', s.get('workers', '?'))} x {threads}"),
                TableCell(str(s.get("in_flight", "?"))),  # manifests before the fact: unknown
                TableCell(str(s.get("pool_max", 0) or "-")),
                TableCell(str(s.get("max_db_connections", "?"))),
                TableCell(str(s.get("status", ""))),
            ]
        )
    table.note = (
        "threads 'per request': Django's ASGI handler runs sync code in a thread per request "
        "(asgiref), which no server flag bounds. max requests in flight: workers x threads "
        "for thread-bound cells (a thread serves one request at a time); 'event loop' for ASGI "
        "async views and gevent workers, whose loop takes new requests while others wait; '?': "
        "not recorded by this run. db: close = CONN_MAX_AGE 0; persistent = "
        "CONN_MAX_AGE > 0; pool = Django's psycopg 3 pool."
    )
    return table
