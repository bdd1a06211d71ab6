"""GB_CPU_WORK_MS: a known amount of CPU work added to every request (off by default).

It exists to prove the regression gate: a candidate with this on is measurably slower, by an
amount the experimenter chose. The work is measured on the thread's own CPU clock, so a request
costs the same CPU whatever else the machine is doing.
Installed first in MIDDLEWARE only when the setting is above 0, and both sync and async
capable, so it never makes Django adapt anything.
"""

import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings

ROUNDS_PER_CHECK = 32  # sha256 rounds between clock reads: about 20 us of work


def burn(ms: float) -> bytes:
    """Hash until this thread has used `ms` of CPU time (its own clock, CLOCK_THREAD_CPUTIME_ID):
    the same CPU cost per request however busy the machine is."""
    digest = b"gatewaybench"
    deadline = time.thread_time() + ms / 1000
    while time.thread_time() < deadline:
        for _ in range(ROUNDS_PER_CHECK):
            digest = hashlib.sha256(digest).digest()
    return digest


class CpuWorkMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        self.ms = float(settings.GB_CPU_WORK_MS)
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        if self.is_async:
            return self.__acall__(request)
        burn(self.ms)
        return self.get_response(request)

    async def __acall__(self, request: Any) -> Any:
        burn(self.ms)  # on the event loop, as CPU-bound code in an async view would be
        response: Awaitable[Any] = self.get_response(request)
        return await response
