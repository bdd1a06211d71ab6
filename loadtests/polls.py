"""The polls session: open a poll form, submit a random vote, read the results. Functions of an
HTTP client (a FastHttpSession), so the closed model's PollUser (locustfile.py) and the open
model's arrivals (openmodel.py) run the very same requests."""

from __future__ import annotations

import os
import random
from typing import Any

from loadtests import listeners
from loadtests.pages import CHOICE_RE, CSRF_RE

QUESTION_IDS = [int(x) for x in os.environ.get("GB_QUESTION_IDS", "1,2,3,4,5").split(",")]
CLIENT_TIMEOUT_S = float(os.environ.get("GB_CLIENT_TIMEOUT_S", "10"))
# What one iteration runs: the polls session, or ("request") one GET of ARRIVAL_PATH.
ARRIVAL = os.environ.get("GB_ARRIVAL", "session")
ARRIVAL_PATH = os.environ.get("GB_ARRIVAL_PATH", "/polls/")


def fail(resp: Any, expected: str) -> None:
    """Mark a response failed, saying what came back; with no response, the socket error."""
    if resp.status_code == 0 and getattr(resp, "error", None) is not None:
        resp.failure(f"{type(resp.error).__name__}: {resp.error}")
    else:
        resp.failure(f"expected {expected}, got {resp.status_code}")


def get_page(client: Any, path: str) -> None:
    """One GET of a page that must answer 200 (--arrival request)."""
    with client.get(path, catch_response=True) as resp:
        if resp.status_code != 200:
            fail(resp, "200")


def iteration(client: Any) -> None:
    """One user iteration of the closed model: a polls session, or one GET (--arrival)."""
    if ARRIVAL == "request":
        get_page(client, ARRIVAL_PATH)
    else:
        vote_once(client, random.choice(QUESTION_IDS))


def vote_once(client: Any, question_id: int) -> None:
    form = open_form(client, question_id)
    # A stopping test drains: finish the request in flight, start no new one.
    if form is None or listeners.stopping():
        return
    if not submit_vote(client, question_id, *form) or listeners.stopping():
        return
    with client.get(
        f"/polls/{question_id}/results/", name="/polls/[id]/results/", catch_response=True
    ) as resp:
        if resp.status_code != 200:
            fail(resp, "200")


def open_form(client: Any, question_id: int) -> tuple[str, list[str]] | None:
    with client.get(f"/polls/{question_id}/", name="/polls/[id]/", catch_response=True) as resp:
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


def submit_vote(client: Any, question_id: int, token: str, choices: list[str]) -> bool:
    rec = listeners.recorder()
    if rec is not None:
        rec.votes["attempted"] += 1
    outcome = "lost"
    with client.post(
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
