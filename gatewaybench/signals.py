"""SIGINT/SIGTERM become an `Interrupted` exception so every `with` block tears down in order.

Python ignores an exception raised while a `__del__` method or a weakref callback runs
("Exception ignored in ..."), and a handler can fire there: a signal landing while garbage is
collected would then be recorded but never unwind the run. Long-running loops therefore call
`checkpoint()`, which raises for a signal that was received while armed but got lost.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType

from gatewaybench.errors import Interrupted


@dataclass
class SignalGuard:
    """Raises Interrupted on the first signal while armed; later signals are only recorded,
    so a second Ctrl-C cannot cut a teardown or the final manifest write short."""

    armed: bool = True
    received: list[int] = field(default_factory=list)

    def handler(self, signum: int, _frame: FrameType | None) -> None:
        first = not self.received
        self.received.append(signum)
        if first and self.armed:
            raise Interrupted(signum)

    def disarm(self) -> None:
        self.armed = False

    @property
    def exit_code(self) -> int | None:
        return 128 + self.received[0] if self.received else None


_active: list[SignalGuard] = []


def checkpoint() -> None:
    """Raise Interrupted if a signal arrived while armed. Call it only on the way forward
    (between steps, in wait loops), never from teardown: there it would cut a cleanup short."""
    if _active and _active[-1].armed and _active[-1].received:
        raise Interrupted(_active[-1].received[0])


@contextmanager
def interruptible() -> Iterator[SignalGuard]:
    guard = SignalGuard()
    previous = {s: signal.signal(s, guard.handler) for s in (signal.SIGINT, signal.SIGTERM)}
    _active.append(guard)
    try:
        yield guard
    finally:
        _active.remove(guard)
        for sig, old in previous.items():
            signal.signal(sig, old)
