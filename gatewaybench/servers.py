"""Registry of application servers: name -> interface, pip package, argv builder.

Adding a server is one entry here. Builders are pure: they turn a port, a worker count and the
environment's bin directory into an argv; starting the process is stack/app.py's job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

WSGI_APP = "gbsite.wsgi:application"
ASGI_APP = "gbsite.asgi:application"


@dataclass(frozen=True)
class ServerArgs:
    bin_dir: Path
    host: str
    port: int
    workers: int


@dataclass(frozen=True)
class ServerDef:
    name: str
    interface: str  # "wsgi" or "asgi"
    package: str  # distribution name, for the version recorded in the manifest
    build_argv: Callable[[ServerArgs], list[str]]
    multi_process: bool = True  # False: the server has no workers option (daphne)
    note: str = ""


def _gunicorn(a: ServerArgs) -> list[str]:
    return [
        str(a.bin_dir / "gunicorn"),
        WSGI_APP,
        f"--bind={a.host}:{a.port}",
        f"--workers={a.workers}",
        "--worker-class=sync",
        # gunicorn 27 opens a control socket by default; the harness needs no second listener.
        "--no-control-socket",
        "--error-logfile=-",
        "--log-level=warning",
    ]


def _uvicorn(a: ServerArgs) -> list[str]:
    return [
        str(a.bin_dir / "uvicorn"),
        ASGI_APP,
        f"--host={a.host}",
        f"--port={a.port}",
        f"--workers={a.workers}",
        # Django's ASGI handler does not implement lifespan; "off" avoids a warning per worker.
        "--lifespan=off",
        "--no-access-log",
        "--log-level=warning",
    ]


def _daphne(a: ServerArgs) -> list[str]:
    return [
        str(a.bin_dir / "daphne"),
        f"--bind={a.host}",
        f"--port={a.port}",
        "--verbosity=1",
        ASGI_APP,
    ]


def _hypercorn(a: ServerArgs) -> list[str]:
    return [
        str(a.bin_dir / "hypercorn"),
        ASGI_APP,
        f"--bind={a.host}:{a.port}",
        f"--workers={a.workers}",
        "--log-level=warning",
    ]


REGISTRY: dict[str, ServerDef] = {
    s.name: s
    for s in (
        ServerDef("gunicorn", "wsgi", "gunicorn", _gunicorn, note="sync workers"),
        ServerDef("uvicorn", "asgi", "uvicorn", _uvicorn),
        ServerDef(
            "daphne",
            "asgi",
            "daphne",
            _daphne,
            multi_process=False,
            note="daphne has no workers option: one process regardless of the workers setting",
        ),
        ServerDef("hypercorn", "asgi", "hypercorn", _hypercorn),
    )
}


def effective_workers(server: ServerDef, workers: int) -> int:
    return workers if server.multi_process else 1
