"""The polls scenario: open a poll form, submit a random vote, read the results; wait 1-2 s.

Standalone: `locust -f loadtests/locustfile.py --host http://127.0.0.1:8080` (add
`,loadtests/shape.py` for user steps). Under the harness, GB_* variables turn on per-second
recording (see recording.py) and make the master stop itself exactly when the steady window ends.
"""

from __future__ import annotations

import math
import os
import random
import re
import sys
import time
from pathlib import Path
from typing import Any

import gevent
from locust import FastHttpUser, between, events, task
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

# Locust loads this file by path; make the package importable wherever Locust was started from.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from loadtests.recording import Recorder

CSRF_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
CHOICE_RE = re.compile(r'name="choice" id="choice\d+" value="(\d+)"')

RECORD_DIR = os.environ.get("GB_RECORD_DIR")
QUESTION_IDS = [
    int(x) for x in os.environ.get("GB_QUESTION_IDS", "1,2,3,4,5,6,7,8,9,10").split(",")
]
CLIENT_TIMEOUT_S = float(os.environ.get("GB_CLIENT_TIMEOUT_S", "10"))
WARMUP_S = float(os.environ.get("GB_WARMUP_S", "0"))
WINDOW_S = int(os.environ.get("GB_WINDOW_S", "0"))
CPU_SAMPLE_S = 1.0
# After the window's last second closes, wait a little so completions stamped in it are in.
STOP_GRACE_S = 0.25

STATE: dict[str, Any] = {"recorder": None, "stopping": False}


def recorder() -> Recorder | None:
    rec: Recorder | None = STATE["recorder"]
    return rec


class PollUser(FastHttpUser):
    wait_time = between(1, 2)
    network_timeout = CLIENT_TIMEOUT_S
    connection_timeout = CLIENT_TIMEOUT_S

    @task
    def vote(self) -> None:
        try:
            self._vote_once(random.choice(QUESTION_IDS))
        finally:
            # Every iteration counts, finished or cut short: Little's law needs the cycle rate.
            rec = recorder()
            if rec is not None:
                rec.task_done()

    def _vote_once(self, question_id: int) -> None:
        form = self._open_form(question_id)
        # A stopping test drains: finish the request in flight, start no new one.
        if form is None or STATE["stopping"]:
            return
        if not self._submit_vote(question_id, *form) or STATE["stopping"]:
            return
        with self.client.get(
            f"/polls/{question_id}/results/", name="/polls/[id]/results/", catch_response=True
        ) as resp:
            if resp.status_code != 200:
                resp.failure(f"expected 200, got {resp.status_code}")

    def _open_form(self, question_id: int) -> tuple[str, list[str]] | None:
        with self.client.get(
            f"/polls/{question_id}/", name="/polls/[id]/", catch_response=True
        ) as resp:
            if resp.status_code != 200:
                resp.failure(f"expected 200, got {resp.status_code}")
                return None
            text = resp.text or ""
            token = CSRF_RE.search(text)
            choices = CHOICE_RE.findall(text)
            if token is None or not choices:
                resp.failure("unexpected content: no CSRF token or no choices in the form")
                return None
            return token.group(1), choices

    def _submit_vote(self, question_id: int, token: str, choices: list[str]) -> bool:
        rec = recorder()
        if rec is not None:
            rec.votes["attempted"] += 1
        outcome = "lost"
        with self.client.post(
            f"/polls/{question_id}/vote/",
            data={"csrfmiddlewaretoken": token, "choice": random.choice(choices)},
            name="/polls/[id]/vote/",
            allow_redirects=False,
            catch_response=True,
        ) as resp:
            if resp.status_code == 302 and "/results/" in (resp.headers.get("location") or ""):
                outcome = "acknowledged"
            else:
                # status 0 means no response at all: the vote may or may not have been committed
                outcome = "rejected" if resp.status_code else "lost"
                resp.failure(f"expected 302 to results, got {resp.status_code}")
        if rec is not None:
            rec.votes[outcome] += 1
        return outcome == "acknowledged"


def _role(environment: Environment) -> str:
    if isinstance(environment.runner, MasterRunner):
        return "master"
    if isinstance(environment.runner, WorkerRunner):
        return "worker"
    return "local"


def _describe(response: Any, exception: BaseException | None) -> str | None:
    if exception is None:
        return None
    status = getattr(response, "status_code", 0) or 0
    if status:
        return f"HTTP {status}: {exception}"
    return f"{type(exception).__name__}: {exception}"


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
        rec.request(f"{request_type} {name}", response_time or 0.0, _describe(response, exception))


def _on_test_start(environment: Environment, **_: Any) -> None:
    rec = recorder()
    if rec is not None:
        rec.mark("test_start")
        gevent.spawn(_sample_cpu_forever, rec)


def _on_spawning_complete(user_count: int, **_: Any) -> None:
    rec = recorder()
    if rec is None:
        return
    rec.mark("spawning_complete")
    runner = _runner_for_stop()
    if runner is not None and WINDOW_S > 0:
        window_start = math.ceil(rec.events["spawning_complete"] + WARMUP_S)
        stop_at = window_start + WINDOW_S + STOP_GRACE_S
        rec.events["planned_stop"] = stop_at
        gevent.spawn_later(max(0.0, stop_at - time.time()), runner.quit)


def _runner_for_stop() -> Any:
    env = STATE.get("environment")
    if env is None or isinstance(env.runner, WorkerRunner):
        return None  # workers follow their master
    return env.runner


def _on_test_stopping(**_: Any) -> None:
    STATE["stopping"] = True
    rec = recorder()
    if rec is not None:
        rec.mark("test_stopping")


def _on_test_stop(**_: Any) -> None:
    _flush("test_stop")


def _on_quitting(**_: Any) -> None:
    _flush("quitting")


def _flush(event: str) -> None:
    rec = recorder()
    if rec is None or RECORD_DIR is None:
        return
    rec.mark(event)
    rec.sample_cpu()
    rec.write(Path(RECORD_DIR))


# Registered explicitly rather than by decorator so the handlers keep their type signatures.
events.init.add_listener(_on_init)
events.request.add_listener(_on_request)
events.test_start.add_listener(_on_test_start)
events.spawning_complete.add_listener(_on_spawning_complete)
events.test_stopping.add_listener(_on_test_stopping)
events.test_stop.add_listener(_on_test_stop)
events.quitting.add_listener(_on_quitting)
