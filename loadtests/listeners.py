"""Locust event listeners that feed the per-second Recorder (see recording.py).

`install()` registers them; any locustfile that calls it is recorded the same way, so the
harness's scenario and the bare overhead benchmark share one code path. Under the harness,
GB_RECORD_DIR turns recording on and GB_WARMUP_S/GB_WINDOW_S make the master (or the single
local process) stop itself exactly when the steady window ends.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent
from locust import events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from loadtests.recording import Recorder

RECORD_DIR = os.environ.get("GB_RECORD_DIR")
WARMUP_S = float(os.environ.get("GB_WARMUP_S", "0"))
WINDOW_S = int(os.environ.get("GB_WINDOW_S", "0"))
CPU_SAMPLE_S = 1.0
# After the window's last second closes, wait a little so completions stamped in it are in.
STOP_GRACE_S = 0.25

STATE: dict[str, Any] = {"recorder": None, "stopping": False, "environment": None}


def recorder() -> Recorder | None:
    rec: Recorder | None = STATE["recorder"]
    return rec


def stopping() -> bool:
    """True once the test is stopping: users finish their request in flight, start no new one."""
    return bool(STATE["stopping"])


def recorded_between(low_s: float, high_s: float) -> Callable[[Any], float]:
    """Locust's `between`, with each think time recorded (for Little's law in the window)."""

    def wait_time(_user: Any) -> float:
        seconds = random.uniform(low_s, high_s)
        rec = recorder()
        if rec is not None:
            rec.think(seconds)
        return seconds

    return wait_time


def describe(response: Any, exception: BaseException | None) -> str | None:
    """One line for a failed request: the HTTP status when there was one, else the exception."""
    if exception is None:
        return None
    status = getattr(response, "status_code", 0) or 0
    if status:
        return f"HTTP {status}: {exception}"
    return str(exception)


def _role(environment: Environment) -> str:
    if isinstance(environment.runner, MasterRunner):
        return "master"
    if isinstance(environment.runner, WorkerRunner):
        return "worker"
    return "local"


def _sample_cpu_forever(rec: Recorder) -> None:
    while True:
        rec.sample_cpu()
        gevent.sleep(CPU_SAMPLE_S)


def _on_init(environment: Environment, **_: Any) -> None:
    STATE["environment"] = environment
    if RECORD_DIR:
        STATE["recorder"] = Recorder(role=_role(environment))


def _on_request(
    request_type: str,
    name: str,
    response_time: float,
    response: Any = None,
    exception: BaseException | None = None,
    **_: Any,
) -> None:
    rec = recorder()
    if rec is not None:
        rec.request(f"{request_type} {name}", response_time or 0.0, describe(response, exception))


def _on_test_start(**_: Any) -> None:
    rec = recorder()
    if rec is not None:
        rec.mark("test_start")
        gevent.spawn(_sample_cpu_forever, rec)


def _on_spawning_complete(**_: Any) -> None:
    rec = recorder()
    env = STATE["environment"]
    if rec is None or env is None:
        return
    rec.mark("spawning_complete")
    if WINDOW_S > 0 and not isinstance(env.runner, WorkerRunner):  # workers follow their master
        window_start = math.ceil(rec.events["spawning_complete"] + WARMUP_S)
        stop_at = window_start + WINDOW_S + STOP_GRACE_S
        rec.events["planned_stop"] = stop_at
        gevent.spawn_later(max(0.0, stop_at - time.time()), env.runner.quit)


def _on_test_stopping(**_: Any) -> None:
    STATE["stopping"] = True
    rec = recorder()
    if rec is not None:
        rec.mark("test_stopping")


def _flush(event: str) -> None:
    rec = recorder()
    if rec is None or RECORD_DIR is None:
        return
    rec.mark(event)
    rec.sample_cpu()
    rec.write(Path(RECORD_DIR))


def _on_test_stop(**_: Any) -> None:
    _flush("test_stop")


def _on_quitting(**_: Any) -> None:
    _flush("quitting")


def install() -> None:
    """Register the listeners (explicitly, so the handlers keep their type signatures)."""
    events.init.add_listener(_on_init)
    events.request.add_listener(_on_request)
    events.test_start.add_listener(_on_test_start)
    events.spawning_complete.add_listener(_on_spawning_complete)
    events.test_stopping.add_listener(_on_test_stopping)
    events.test_stop.add_listener(_on_test_stop)
    events.quitting.add_listener(_on_quitting)
