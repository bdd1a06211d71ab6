"""Presets: named matrices. `seed` is the article's, `tuned` gives each server what suits it,
`all` is every server x every relevant variant; `cross_cells` turns lists into cells."""

from __future__ import annotations

from dataclasses import dataclass

from gatewaybench.errors import UsageError
from gatewaybench.matrix import Cell
from gatewaybench.servers import REGISTRY
from gatewaybench.spec import SEED_CELLS

TUNED_THREADS = 4


def _tuned() -> tuple[Cell, ...]:
    """Each server with what suits it: WSGI keeps connections per thread; ASGI uses async
    views over a bounded psycopg 3 pool (persistent connections leak under asgiref)."""
    return tuple(
        Cell(name, "sync", "persistent") if s.interface == "wsgi" else Cell(name, "async", "pool")
        for name, s in REGISTRY.items()
    )


def _all() -> tuple[Cell, ...]:
    """Every server x every relevant variant: WSGI x {close, persistent, pool}; ASGI x
    {sync, async} x {close, pool} (persistent under ASGI only by asking for it)."""
    cells: list[Cell] = []
    for name, s in REGISTRY.items():
        if s.interface == "wsgi":
            cells += [Cell(name, "sync", db) for db in ("close", "persistent", "pool")]
        else:
            cells += [Cell(name, v, db) for v in ("sync", "async") for db in ("close", "pool")]
    return tuple(cells)


@dataclass(frozen=True)
class Preset:
    cells: tuple[Cell, ...]
    threads: int
    description: str


PRESETS: dict[str, Preset] = {
    "seed": Preset(
        SEED_CELLS, 1, "the article: gunicorn, uvicorn, daphne, hypercorn; sync views, defaults"
    ),
    "tuned": Preset(_tuned(), TUNED_THREADS, "each server with the views and pool that suit it"),
    "all": Preset(_all(), TUNED_THREADS, "every server x every relevant variant"),
}


def preset(name: str) -> Preset:
    if name not in PRESETS:
        raise UsageError(f"unknown preset {name!r}", f"choose from: {', '.join(PRESETS)}")
    return PRESETS[name]


def cross_cells(
    servers: tuple[str, ...], views: tuple[str, ...], dbs: tuple[str, ...]
) -> tuple[Cell, ...]:
    """Every relevant combination: async views only on ASGI, persistent connections only on
    WSGI (under ASGI they leak; ask for that cell explicitly with --cells)."""
    cells = []
    for name in servers:
        wsgi = REGISTRY[name].interface == "wsgi"
        for v in views:
            for db in dbs:
                if (v == "async" and wsgi) or (db == "persistent" and not wsgi):
                    continue
                cells.append(Cell(name, v, db))
    if not cells:
        raise UsageError(
            "no relevant cell in servers x views x db (async views need ASGI servers, "
            "persistent connections WSGI ones)",
            "widen the lists, or name cells with --cells",
        )
    return tuple(cells)
