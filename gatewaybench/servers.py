"""Registry of application servers: name -> interface, packages, argv builder, concurrency model.

Adding a server is one entry here. Builders are pure: they turn a ServerArgs (where to bind, the
budget, which app) into an argv; starting processes is stack/app.py's job. Every server gets the
same budget — worker processes x threads per process — through its own flags; `concurrency`
says what a server can actually do with it, and the report prints that, not the request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

WSGI_APP = "gbsite.wsgi:application"
ASGI_APP = "gbsite.asgi:application"


class Concurrency(StrEnum):
    """How a server runs requests at once, so what it does with the thread part of the budget."""

    THREAD_POOL = "thread_pool"  # a threads-per-worker option: it gets the budget's threads
    ONE_PER_PROCESS = "one_per_process"  # one request at a time (gunicorn's sync worker)
    ASGIREF = "asgiref"  # Django's ASGI handler runs sync code in a thread per request
    GREENLET = "greenlet"  # a greenlet per request (gevent), no threads flag


# gunicorn's own default for --worker-connections, stated so the argv says it: a gevent worker
# serves at most this many requests at once (its greenlet pool), so it is the per-process cap.
GEVENT_WORKER_CONNECTIONS = 1000


@dataclass(frozen=True)
class ServerArgs:
    bin_dir: Path
    host: str
    port: int
    workers: int  # the server's worker processes
    threads: int = 1
    app: str = ""  # module:attribute; empty: the sample app's target for the interface
    fd: int | None = None  # inherited listening socket (servers started as instances)


@dataclass(frozen=True)
class ServerDef:
    name: str
    interface: str  # "wsgi" or "asgi"
    packages: tuple[str, ...]  # distributions whose versions the manifest records
    build_argv: Callable[[ServerArgs], list[str]]
    executable: str  # the console script in the environment's bin directory
    concurrency: Concurrency = Concurrency.ONE_PER_PROCESS
    # False: no workers option; the harness starts `workers` instances on one shared socket.
    multi_process: bool = True
    note: str = ""

    def target(self, args: ServerArgs) -> str:
        return args.app or (WSGI_APP if self.interface == "wsgi" else ASGI_APP)


def _gunicorn_common(a: ServerArgs) -> list[str]:
    return [
        str(a.bin_dir / "gunicorn"),
        f"--bind={a.host}:{a.port}",
        f"--workers={a.workers}",
        # gunicorn 27 opens a control socket by default; the harness needs no second listener.
        "--no-control-socket",
        "--error-logfile=-",
        "--log-level=warning",
    ]


def _gunicorn(a: ServerArgs) -> list[str]:
    return [*_gunicorn_common(a), "--worker-class=sync", REGISTRY["gunicorn"].target(a)]


def _gunicorn_gthread(a: ServerArgs) -> list[str]:
    target = REGISTRY["gunicorn-gthread"].target(a)
    return [*_gunicorn_common(a), "--worker-class=gthread", f"--threads={a.threads}", target]


def _gunicorn_gevent(a: ServerArgs) -> list[str]:
    return [
        *_gunicorn_common(a),
        "--worker-class=gevent",
        f"--worker-connections={GEVENT_WORKER_CONNECTIONS}",
        REGISTRY["gunicorn-gevent"].target(a),
    ]


def _gunicorn_uvicorn(a: ServerArgs) -> list[str]:
    # The uvicorn-worker package's worker; its lifespan is "auto", which Django tolerates.
    target = REGISTRY["gunicorn-uvicorn"].target(a)
    return [*_gunicorn_common(a), "--worker-class=uvicorn_worker.UvicornWorker", target]


def _uvicorn(a: ServerArgs) -> list[str]:
    return [
        str(a.bin_dir / "uvicorn"),
        f"--host={a.host}",
        f"--port={a.port}",
        f"--workers={a.workers}",
        # Django's ASGI handler does not implement lifespan; "off" avoids a warning per worker.
        "--lifespan=off",
        "--no-access-log",
        "--log-level=warning",
        REGISTRY["uvicorn"].target(a),
    ]


def _daphne(a: ServerArgs) -> list[str]:
    bind = [f"--fd={a.fd}"] if a.fd is not None else [f"--bind={a.host}", f"--port={a.port}"]
    return [str(a.bin_dir / "daphne"), *bind, "--verbosity=1", REGISTRY["daphne"].target(a)]


def _hypercorn(a: ServerArgs) -> list[str]:
    return [
        str(a.bin_dir / "hypercorn"),
        f"--bind={a.host}:{a.port}",
        f"--workers={a.workers}",
        "--log-level=warning",
        REGISTRY["hypercorn"].target(a),
    ]


def _granian(a: ServerArgs, interface: str, name: str) -> list[str]:
    argv = [
        str(a.bin_dir / "granian"),
        f"--interface={interface}",
        f"--host={a.host}",
        f"--port={a.port}",
        f"--workers={a.workers}",
        "--no-access-log",
        "--log-level=warning",
    ]
    if interface == "wsgi":
        argv.append(f"--blocking-threads={a.threads}")  # granian's WSGI threads per worker
    return [*argv, REGISTRY[name].target(a)]


def _granian_wsgi(a: ServerArgs) -> list[str]:
    return _granian(a, "wsgi", "granian-wsgi")


def _granian_asgi(a: ServerArgs) -> list[str]:
    # "asginl": ASGI without lifespan, which Django's handler does not implement.
    return _granian(a, "asginl", "granian-asgi")


REGISTRY: dict[str, ServerDef] = {
    s.name: s
    for s in (
        ServerDef("gunicorn", "wsgi", ("gunicorn",), _gunicorn, "gunicorn", note="sync workers"),
        ServerDef(
            "gunicorn-gthread",
            "wsgi",
            ("gunicorn",),
            _gunicorn_gthread,
            "gunicorn",
            concurrency=Concurrency.THREAD_POOL,
            note="gthread workers",
        ),
        ServerDef(
            "gunicorn-gevent",
            "wsgi",
            ("gunicorn", "gevent", "psycogreen"),
            _gunicorn_gevent,
            "gunicorn",
            concurrency=Concurrency.GREENLET,
            note="gevent workers; psycopg2 cooperative via psycogreen",
        ),
        ServerDef(
            "gunicorn-uvicorn",
            "asgi",
            ("gunicorn", "uvicorn-worker", "uvicorn"),
            _gunicorn_uvicorn,
            "gunicorn",
            concurrency=Concurrency.ASGIREF,
            note="gunicorn managing uvicorn workers",
        ),
        ServerDef(
            "uvicorn", "asgi", ("uvicorn",), _uvicorn, "uvicorn", concurrency=Concurrency.ASGIREF
        ),
        ServerDef(
            "daphne",
            "asgi",
            ("daphne",),
            _daphne,
            "daphne",
            concurrency=Concurrency.ASGIREF,
            multi_process=False,
            note="daphne has no workers option: N daphne processes share one listening socket",
        ),
        ServerDef(
            "hypercorn",
            "asgi",
            ("hypercorn",),
            _hypercorn,
            "hypercorn",
            concurrency=Concurrency.ASGIREF,
        ),
        ServerDef(
            "granian-wsgi",
            "wsgi",
            ("granian",),
            _granian_wsgi,
            "granian",
            concurrency=Concurrency.THREAD_POOL,
            note="blocking threads per worker",
        ),
        ServerDef(
            "granian-asgi",
            "asgi",
            ("granian",),
            _granian_asgi,
            "granian",
            concurrency=Concurrency.ASGIREF,
            note="asginl interface (no lifespan)",
        ),
    )
}


def effective_threads(server: ServerDef, threads: int) -> int | None:
    """Threads per process the server really runs requests on; None: no thread count bounds it
    (a thread per request with asgiref, a greenlet per request with gevent)."""
    if server.concurrency == Concurrency.THREAD_POOL:
        return threads
    if server.concurrency == Concurrency.ONE_PER_PROCESS:
        return 1
    return None
