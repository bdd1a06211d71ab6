"""GB_CPU_WORK_MS: a known amount of CPU work added to every request (off by default).

It exists to prove the regression gate: a candidate with this on is measurably slower, by an
amount the experimenter chose. The work is calibrated once per process to CPU time
(time.process_time), so a request costs the same CPU whatever else the machine is doing.
Installed first in MIDDLEWARE only when the setting is above 0, and both sync and async
capable, so it never makes Django adapt anything.
"""

import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings

CALIBRATION_ROUNDS = 20_000


def _rounds_per_ms() -> float:
    digest = b"gatewaybench"
    start = time.process_time()
    for _ in range(CALIBRATION_ROUNDS):
        digest = hashlib.sha256(digest).digest()
    elapsed_ms = (time.process_time() - start) * 1000
    return CALIBRATION_ROUNDS / max(elapsed_ms, 1e-3)


def burn(rounds: int) -> bytes:
    digest = b"gatewaybench"
    for _ in range(rounds):
        digest = hashlib.sha256(digest).digest()
    return digest


class CpuWorkMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        self.rounds = round(settings.GB_CPU_WORK_MS * _rounds_per_ms())
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        if self.is_async:
            return self.__acall__(request)
        burn(self.rounds)
        return self.get_response(request)

    async def __acall__(self, request: Any) -> Any:
        burn(self.rounds)  # on the event loop, as CPU-bound code in an async view would be
        response: Awaitable[Any] = self.get_response(request)
        return await response
