"""SIGINT/SIGTERM become an `Interrupted` exception so every `with` block tears down in order."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from gatewaybench.errors import Interrupted


@contextmanager
def interruptible() -> Iterator[None]:
    fired: list[int] = []

    def handler(signum: int, _frame: FrameType | None) -> None:
        # Only the first signal interrupts; a second one must not cut the teardown short.
        if not fired:
            fired.append(signum)
            raise Interrupted(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
