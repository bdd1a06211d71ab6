"""SIGINT/SIGTERM become an `Interrupted` exception so every `with` block tears down in order."""

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


@contextmanager
def interruptible() -> Iterator[SignalGuard]:
    guard = SignalGuard()
    previous = {s: signal.signal(s, guard.handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield guard
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
