"""Presets: named matrices. `seed` is the article's, `tuned` gives each server what suits it,
`all` is every server x every relevant variant; `cross_cells` turns lists into cells."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gatewaybench.errors import UsageError
from gatewaybench.matrix import Cell
from gatewaybench.servers import REGISTRY, Concurrency, ServerDef
from gatewaybench.spec import SEED_CELLS

TUNED_THREADS = 4
WSGI_ORDER = ("close", "persistent", "pool")  # the order `all` lists a WSGI server's cells in


def _tuned() -> tuple[Cell, ...]:
    """Each server with what suits it: WSGI keeps connections per thread; ASGI uses async
    views over a bounded psycopg 3 pool (persistent connections leak under asgiref)."""
    return tuple(
        Cell(name, "sync", _wsgi_dbs(s)[-1])
        if s.interface == "wsgi"
        else Cell(name, "async", "pool")
        for name, s in REGISTRY.items()
    )


def _wsgi_dbs(server: ServerDef) -> tuple[str, ...]:
    """A WSGI server's relevant connection strategies, the one that suits it last. Under gevent a
    connection per request is what works: persistent ones are kept per greenlet (they leak, as
    under asgiref) and the psycopg 3 pool's worker threads are not what psycogreen patches."""
    if server.concurrency == Concurrency.GREENLET:
        return ("close",)
    return ("close", "pool", "persistent")


def _all() -> tuple[Cell, ...]:
    """Every server x every relevant variant: WSGI x {close, persistent, pool}; ASGI x
    {sync, async} x {close, pool} (persistent under ASGI only by asking for it)."""
    cells: list[Cell] = []
    for name, s in REGISTRY.items():
        if s.interface == "wsgi":
            cells += [Cell(name, "sync", db) for db in sorted(_wsgi_dbs(s), key=WSGI_ORDER.index)]
        else:
            cells += [Cell(name, v, db) for v in ("sync", "async") for db in ("close", "pool")]
    return tuple(cells)


IO_THREADS = 8  # gthread's threads and the async cell's pool: enough to serve during waits


def _io() -> tuple[Cell, ...]:
    """The WSGI answers to waiting (a process, threads, greenlets) against ASGI with sync views
    (a thread per request) and with async views over the pool (the event loop waits)."""
    return (
        Cell("gunicorn"),
        Cell("gunicorn-gthread"),
        Cell("gunicorn-gevent"),
        Cell("uvicorn"),
        Cell("uvicorn", "async", "pool"),
    )


@dataclass(frozen=True)
class Preset:
    cells: tuple[Cell, ...]
    threads: int
    description: str
    # Settings by flag dest, applied below a config file, the environment and flags.
    defaults: dict[str, Any] = field(default_factory=dict)


PRESETS: dict[str, Preset] = {
    "seed": Preset(
        SEED_CELLS, 1, "the article: gunicorn, uvicorn, daphne, hypercorn; sync views, defaults"
    ),
    "tuned": Preset(_tuned(), TUNED_THREADS, "each server with the views and pool that suit it"),
    "all": Preset(_all(), TUNED_THREADS, "every server x every relevant variant"),
    "io": Preset(
        _io(),
        IO_THREADS,
        "when does ASGI pay off: five cells x upstream waits 0, 20, 100, 300 ms, users "
        "calibrated per cell and wait",
        # 20 cell-waits within 25 minutes on 2 cores: short windows, and 4 steps per cell
        # around the knee K its probes found (K/sqrt(2) .. 2K: a short probe's verdict can
        # differ from a step's either way, so the steps reach below K and up to 2K).
        {
            "upstream_ms": (0, 20, 100, 300),
            "users": (),
            "auto_steps": 4,
            "window": 6,
            "ramp": 1.0,
            "warmup": 2.0,
        },
    ),
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
