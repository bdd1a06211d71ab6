"""GET /gbinfo: what this app process really runs, as JSON, for the harness's manifest.

The driver comes from the connection Django actually opened (psycopg 3 is used whenever it is
importable, whatever the configuration says), and the middleware list says which middleware
Django must adapt with sync_to_async/async_to_sync under ASGI (a thread hop per request).
It also states the waits this process adds (upstream calls, database sleep) and whether psycopg2
was made cooperative for gevent (gbsite/wsgi.py does that under gunicorn's gevent worker).
"""

import sys

import django
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.utils.module_loading import import_string


def _adapted_middleware() -> list[str]:
    """Middleware that is not async-capable: under ASGI Django wraps it in sync_to_async."""
    return [
        path
        for path in settings.MIDDLEWARE
        if not getattr(import_string(path), "async_capable", False)
    ]


def _psycopg2_green() -> bool:
    """gbsite/wsgi.py's flag, read from the loaded module rather than imported: importing the
    WSGI entry point would build a WSGI handler inside an ASGI process."""
    wsgi = sys.modules.get("gbsite.wsgi")
    return bool(getattr(wsgi, "PSYCOPG2_GREEN", False))


def gbinfo(request: HttpRequest) -> JsonResponse:
    connection.ensure_connection()
    database = connection.Database  # the DB-API module Django chose: psycopg or psycopg2
    driver = "psycopg3" if database.__name__ == "psycopg" else database.__name__
    pool = getattr(connection, "pool", None)
    data = {
        "driver": driver,
        "driver_version": getattr(database, "__version__", "unknown").split(" ")[0],
        "pool": pool is not None,
        "pool_max_size": getattr(pool, "max_size", 0) if pool is not None else 0,
        "conn_max_age": connection.settings_dict["CONN_MAX_AGE"],
        "views": settings.GB_VIEWS,
        "adapted_middleware": _adapted_middleware(),
        "upstream_ms": settings.GB_UPSTREAM_MS,
        "upstream_calls": settings.GB_UPSTREAM_CALLS,
        "db_wait_ms": settings.GB_DB_WAIT_MS,
        "psycopg2_green": _psycopg2_green(),
        "django": django.get_version(),
        "python": sys.version.split()[0],
    }
    return JsonResponse(data)
