"""The cells of a run: a server with an app variant (views, database connections, driver), and
what one shared budget of worker processes x threads means for each of them.

A cell's label names it everywhere (tables, run directory, report): the server's name alone for
the seed variant (sync views, a connection per request, psycopg2), otherwise with the variant;
in a run with an upstream wait dimension (--upstream-ms), the wait follows: `gunicorn@100ms`.
The label without the wait is the cell's *variant*: one line in the crossover figure.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from gatewaybench.errors import UsageError
from gatewaybench.servers import (
    GEVENT_WORKER_CONNECTIONS,
    REGISTRY,
    Concurrency,
    effective_threads,
)

VIEWS = ("sync", "async")
WAIT_SEP = "@"  # cell label: variant@<upstream ms>ms
UNBUFFERED = "unbuffered"  # cell label part: nginx proxy_request_buffering off
# close: CONN_MAX_AGE=0, Django's default, a connection per request.
# persistent: CONN_MAX_AGE>0, a connection per worker thread kept between requests.
# pool: Django >= 5.1's psycopg 3 connection pool (OPTIONS["pool"]), bounded per process.
DB_STRATEGIES = ("close", "persistent", "pool")
DRIVERS = ("psycopg2", "psycopg3")
PERSISTENT_MAX_AGE_S = 60
# Servers that block a thread per request: what they serve at once is workers x threads.
BLOCKING = (Concurrency.THREAD_POOL, Concurrency.ONE_PER_PROCESS)


@dataclass(frozen=True)
class Budget:
    """The same for every server: worker processes x threads per process."""

    workers: int  # the app server's worker processes (--workers)
    threads: int = 1


@dataclass(frozen=True)
class Cell:
    server: str
    views: str = "sync"
    db: str = "close"
    driver: str = ""  # empty: psycopg3 for the pool (it requires it), psycopg2 otherwise
    # ms every polls request waits on the delayed upstream; None: the run has no such dimension
    upstream_ms: int | None = None
    # nginx reads a request's whole body before passing it on (nginx's default); False: it
    # streams the body to the app as it arrives, so a slow client holds the app's worker.
    request_buffering: bool = True

    @property
    def resolved_driver(self) -> str:
        return self.driver or ("psycopg3" if self.db == "pool" else "psycopg2")

    @property
    def label(self) -> str:
        if self.upstream_ms is None:
            return self.variant
        return f"{self.variant}{WAIT_SEP}{self.upstream_ms}ms"

    @property
    def variant(self) -> str:
        """The label without the wait: server and app variant only."""
        parts = [self.server]
        if self.views != "sync":
            parts.append(f"{self.views}")
        if self.db != "close":
            parts.append(self.db)
        if self.driver and self.driver != ("psycopg3" if self.db == "pool" else "psycopg2"):
            parts.append(self.driver)
        if not self.request_buffering:
            parts.append(UNBUFFERED)
        return "+".join(parts)

    @property
    def interface(self) -> str:
        return REGISTRY[self.server].interface


@dataclass(frozen=True)
class Effective:
    """What a cell runs with under the budget, stated in the report."""

    workers: int  # the app server's worker processes
    threads: int | None  # per process; None: a thread per request in flight (asgiref)
    pool_max: int  # psycopg pool size per process; 0: no pool
    max_db_connections: int | None  # None: unbounded (grows with requests in flight)

    @property
    def threads_text(self) -> str:
        return "per request" if self.threads is None else str(self.threads)

    @property
    def db_text(self) -> str:
        return "unbounded" if self.max_db_connections is None else str(self.max_db_connections)


def effective(cell: Cell, budget: Budget) -> Effective:
    server = REGISTRY[cell.server]
    threads = effective_threads(server, budget.threads)
    # The pool bounds database concurrency per process; for ASGI servers it is also the only
    # knob the thread budget has, since asgiref's per-request threads take no flag.
    pool_max = (threads or budget.threads) if cell.db == "pool" else 0
    if pool_max:
        max_db: int | None = budget.workers * pool_max
    elif threads is None:
        max_db = None  # a connection per request in flight (and per thread with persistent)
    else:
        max_db = budget.workers * threads
    return Effective(budget.workers, threads, pool_max, max_db)


def with_waits(cells: tuple[Cell, ...], waits: tuple[int, ...]) -> tuple[Cell, ...]:
    """Cells x upstream waits, wait by wait (so calibration and drift go wait by wait)."""
    if not waits:
        return cells
    if any(c.upstream_ms is not None for c in cells):
        raise UsageError(
            "cells name their own waits (@<ms>ms) and --upstream-ms is given too",
            "use one of the two",
        )
    return tuple(replace(c, upstream_ms=ms) for ms in waits for c in cells)


def with_buffering(cells: tuple[Cell, ...], buffering: tuple[bool, ...] | None) -> tuple[Cell, ...]:
    """Cells x nginx request buffering (on, off), cell by cell so each pair runs side by side."""
    if buffering is None:
        return cells
    return tuple(replace(c, request_buffering=b) for c in cells for b in buffering)


def in_flight_text(cell: Cell, eff: Effective) -> str:
    """The most requests the cell can serve at once: what bounds throughput under waits."""
    mode = REGISTRY[cell.server].concurrency
    if mode in BLOCKING:
        threads = eff.threads or 1
        return f"{eff.workers} x {threads} = {eff.workers * threads}"
    if cell.views == "async":
        return "event loop"
    if mode == Concurrency.ASGIREF:
        return "event loop; sync views: a thread per request"
    return f"event loop: {eff.workers} x {GEVENT_WORKER_CONNECTIONS} greenlets"


def blocking_slots(cell: Cell, eff: Effective) -> int | None:
    """Requests served at once by a cell that blocks a thread per request; None: no such bound
    (an event loop, greenlets, or asgiref's thread per request)."""
    if REGISTRY[cell.server].concurrency in BLOCKING:
        return eff.workers * (eff.threads or 1)
    return None


def check_cell(cell: Cell) -> None:
    """Usage errors for a cell that cannot run as asked."""
    if cell.server not in REGISTRY:
        raise UsageError(f"unknown server {cell.server!r}", f"choose from: {', '.join(REGISTRY)}")
    if cell.views not in VIEWS:
        raise UsageError(f"unknown views {cell.views!r}", f"choose from: {', '.join(VIEWS)}")
    if cell.db not in DB_STRATEGIES:
        known = ", ".join(DB_STRATEGIES)
        raise UsageError(f"unknown db strategy {cell.db!r}", f"choose from: {known}")
    if cell.upstream_ms is not None and cell.upstream_ms < 0:
        raise UsageError(f"{cell.label}: the upstream wait must not be negative", "use ms >= 0")
    if cell.driver and cell.driver not in DRIVERS:
        raise UsageError(f"unknown driver {cell.driver!r}", f"choose from: {', '.join(DRIVERS)}")
    if cell.views == "async" and cell.interface != "asgi":
        raise UsageError(
            f"{cell.label}: async views need an ASGI server ({cell.server} is WSGI)",
            "use views = sync for WSGI servers",
        )
    if cell.db == "pool" and cell.resolved_driver != "psycopg3":
        raise UsageError(
            f"{cell.label}: Django's pool needs psycopg 3", "drop driver or use psycopg3"
        )


def warnings_for(cell: Cell, eff: Effective, max_connections: int) -> list[str]:
    """Configurations known to misbehave, said before the run rather than found in it."""
    out = []
    if cell.db == "persistent" and REGISTRY[cell.server].concurrency == Concurrency.ASGIREF:
        out.append(
            f"{cell.label}: persistent connections under ASGI are kept per asgiref thread, and "
            "those threads come and go per request: connections leak until PostgreSQL refuses more"
        )
    if cell.db == "persistent" and REGISTRY[cell.server].concurrency == Concurrency.GREENLET:
        out.append(
            f"{cell.label}: persistent connections under gevent are kept per greenlet, and "
            "greenlets come and go per request: connections leak until PostgreSQL refuses more"
        )
    if eff.max_db_connections is None:
        out.append(
            f"{cell.label}: database connections are unbounded (one per request in flight); "
            f"PostgreSQL max_connections {max_connections} will be the limit"
        )
    elif eff.max_db_connections > max_connections:
        out.append(
            f"{cell.label}: can open {eff.max_db_connections} database connections, more than "
            f"PostgreSQL max_connections {max_connections}"
        )
    return out


def unique_labels(cells: tuple[Cell, ...]) -> None:
    labels = [c.label for c in cells]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise UsageError(f"the matrix repeats {', '.join(dupes)}", "list each cell once")
