"""GB_UPSTREAM_*: the polls views wait on a delayed upstream API before touching the database.

Each polls view first makes GB_UPSTREAM_CALLS sequential ``GET {GB_UPSTREAM_URL}/sleep?s=...``
calls that each take GB_UPSTREAM_MS (the upstream, nginx/upstream.conf.j2, answers "ok" after
that long). The call comes before the view's first query so that the wait holds a worker, a
thread, a greenlet or nothing (an awaited call) -- never a database connection. With
GB_UPSTREAM_MS = 0 (the default) no call is made and no client is ever created.

Anything but a 200 answer, and any transport error or timeout, raises: Django turns it into a
500 and logs it, which is what the harness counts. Nothing here retries or hides a failure.
"""

import asyncio
import threading
import weakref

import httpx
from django.conf import settings

SLEEP_PATH = "/sleep"
# Idle connections kept for reuse. Above the requests a process has in flight at once (a few
# hundred greenlets or awaited calls), so a steady load reuses connections instead of opening a
# new one per call; there is no cap on connections in use (max_connections=None), so the client
# never queues a call: the wait measured is the upstream's, not the pool's.
KEEPALIVE_CONNECTIONS = 500


class UpstreamError(Exception):
    """The upstream answered something other than 200."""


def sleep_url(ms: int) -> str:
    # Seconds with 3 decimals: what echo_sleep takes and what the upstream's access log records.
    return f"{settings.GB_UPSTREAM_URL}{SLEEP_PATH}?s={ms / 1000:.3f}"


def _limits() -> httpx.Limits:
    return httpx.Limits(max_connections=None, max_keepalive_connections=KEEPALIVE_CONNECTIONS)


def _timeout() -> httpx.Timeout:
    return httpx.Timeout(settings.GB_UPSTREAM_TIMEOUT_S)


def _check(url: str, response: httpx.Response) -> None:
    if response.status_code != 200:
        raise UpstreamError(f"GET {url} answered {response.status_code}: {response.text[:200]!r}")


# One pooled client per process, shared by all its threads (httpx's sync pool is thread-safe;
# under gevent its sockets and locks are gevent's, so a call yields to other greenlets). One per
# process because a client owns sockets and locks that must not cross a fork: it is created on
# first use, which is in a request, so always in the worker process, never in a parent that
# forks workers (gunicorn --preload). One per process rather than per thread or per request so
# that connections are reused (no TCP handshake per call) however requests map onto threads.
_client: httpx.Client | None = None
_client_lock = threading.Lock()


def client() -> httpx.Client:
    global _client  # noqa: PLW0603  (the process-wide client, created lazily)
    if _client is None:
        with _client_lock:
            if _client is None:
                _client = httpx.Client(limits=_limits(), timeout=_timeout())
    return _client


def wait() -> None:
    """The sync views' upstream wait: GB_UPSTREAM_CALLS blocking calls (0 ms: none)."""
    ms = settings.GB_UPSTREAM_MS
    if ms <= 0:
        return
    url = sleep_url(ms)
    http = client()
    for _ in range(settings.GB_UPSTREAM_CALLS):
        _check(url, http.get(url))


# One AsyncClient per event loop: its connections belong to the loop that opened them. A
# server's process runs one loop, so this is one client per process; the key only matters if
# a loop is replaced (the entry goes away with its loop).
_async_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient]" = (
    weakref.WeakKeyDictionary()
)


def async_client() -> httpx.AsyncClient:
    # No lock: this runs on the loop's thread and does not await between the look-up and the
    # insert, so two requests on one loop cannot both create a client.
    loop = asyncio.get_running_loop()
    found = _async_clients.get(loop)
    if found is None:
        found = _async_clients[loop] = httpx.AsyncClient(limits=_limits(), timeout=_timeout())
    return found


async def await_wait() -> None:
    """The async views' upstream wait: GB_UPSTREAM_CALLS awaited calls, so the event loop
    serves other requests meanwhile (0 ms: none)."""
    ms = settings.GB_UPSTREAM_MS
    if ms <= 0:
        return
    url = sleep_url(ms)
    http = async_client()
    for _ in range(settings.GB_UPSTREAM_CALLS):
        _check(url, await http.get(url))
