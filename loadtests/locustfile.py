"""The polls scenario: open a poll form, submit a random vote, read the results; wait 1-2 s.

Standalone: `locust -f loadtests/locustfile.py --host http://127.0.0.1:8080` (add
`,loadtests/shape.py` for user steps). Under the harness, GB_* variables turn on per-second
recording (listeners.py) and make the master stop itself exactly when the steady window ends.
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path
from typing import Any

from locust import FastHttpUser, task

# Locust loads this file by path; make the package importable wherever Locust was started from.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from loadtests import listeners, slowupload
from loadtests.pages import CHOICE_RE, CSRF_RE

QUESTION_IDS = [int(x) for x in os.environ.get("GB_QUESTION_IDS", "1,2,3,4,5").split(",")]
CLIENT_TIMEOUT_S = float(os.environ.get("GB_CLIENT_TIMEOUT_S", "10"))
# Percent of users that are slow uploaders (loadtests/slowupload.py); 0: voters only.
SLOW_UPLOAD_PCT = int(os.environ.get("GB_SLOW_UPLOAD_PCT", "0"))


def fail(resp: Any, expected: str) -> None:
    """Mark a response failed, saying what came back; with no response, the socket error."""
    if resp.status_code == 0 and getattr(resp, "error", None) is not None:
        resp.failure(f"{type(resp.error).__name__}: {resp.error}")
    else:
        resp.failure(f"expected {expected}, got {resp.status_code}")


class PollUser(FastHttpUser):
    wait_time = listeners.recorded_between(1, 2)
    weight = 100 - SLOW_UPLOAD_PCT
    network_timeout = CLIENT_TIMEOUT_S
    connection_timeout = CLIENT_TIMEOUT_S

    @task
    def vote(self) -> None:
        try:
            self._vote_once(random.choice(QUESTION_IDS))
        finally:
            # Every iteration counts, finished or cut short: Little's law needs the cycle rate.
            rec = listeners.recorder()
            if rec is not None:
                rec.task_done()

    def _vote_once(self, question_id: int) -> None:
        form = self._open_form(question_id)
        # A stopping test drains: finish the request in flight, start no new one.
        if form is None or listeners.stopping():
            return
        if not self._submit_vote(question_id, *form) or listeners.stopping():
            return
        with self.client.get(
            f"/polls/{question_id}/results/", name="/polls/[id]/results/", catch_response=True
        ) as resp:
            if resp.status_code != 200:
                fail(resp, "200")

    def _open_form(self, question_id: int) -> tuple[str, list[str]] | None:
        with self.client.get(
            f"/polls/{question_id}/", name="/polls/[id]/", catch_response=True
        ) as resp:
            if resp.status_code != 200:
                fail(resp, "200")
                return None
            text = resp.text or ""
            token = CSRF_RE.search(text)
            choices = CHOICE_RE.findall(text)
            if token is None or not choices:
                resp.failure("unexpected content: no CSRF token or no choices in the form")
                return None
            return token.group(1), choices

    def _submit_vote(self, question_id: int, token: str, choices: list[str]) -> bool:
        rec = listeners.recorder()
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
                fail(resp, "302 to results")
        if rec is not None:
            rec.votes[outcome] += 1
        return outcome == "acknowledged"


if SLOW_UPLOAD_PCT > 0:

    class SlowUploadUser(slowupload.SlowUploader):
        weight = SLOW_UPLOAD_PCT
        abstract = False


listeners.install()
