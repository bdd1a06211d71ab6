"""Verify the scenario works end to end through nginx before any load is applied.

A benchmark of error pages is worthless: one real form-vote-results round trip must succeed
(CSRF token and cookie, 302 to the results page, results 200) before a server is loaded.
"""

from __future__ import annotations

import http.client
import re
import secrets
import urllib.parse
from dataclasses import dataclass

from gatewaybench.errors import StackError
from gatewaybench.stack.net import LOOPBACK

CSRF_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
CHOICE_RE = re.compile(r'name="choice" id="choice\d+" value="(\d+)"')
COOKIE_RE = re.compile(r"csrftoken=([^;]+)")
TIMEOUT_S = 10
# Django's technical 404 page (shown only while DEBUG is on) says so in these words.
DEBUG_PAGE_MARK = "DEBUG = True"


def _request(
    port: int, method: str, path: str, body: str = "", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], str]:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=TIMEOUT_S)
    try:
        conn.request(method, path, body=body or None, headers={"Host": LOOPBACK, **(headers or {})})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read().decode()
    finally:
        conn.close()


def verify_scenario(port: int, question_id: int) -> None:
    """One form -> vote -> results round trip; raises StackError saying which part was wrong."""
    try:
        _round_trip(port, question_id)
    except OSError as exc:
        raise StackError(f"scenario check: request failed: {exc}", "see logs/") from None


def _round_trip(port: int, question_id: int) -> None:
    status, headers, body = _request(port, "GET", f"/polls/{question_id}/")
    token, choices = CSRF_RE.search(body), CHOICE_RE.findall(body)
    cookie = COOKIE_RE.search(headers.get("set-cookie", ""))
    if status != 200 or token is None or not choices or cookie is None:
        raise StackError(
            f"scenario check: GET /polls/{question_id}/ gave {status} without a usable vote form",
            "see logs/ for the app server's and nginx's logs",
            body[:500],
        )
    form = urllib.parse.urlencode({"csrfmiddlewaretoken": token.group(1), "choice": choices[0]})
    status, headers, body = _request(
        port,
        "POST",
        f"/polls/{question_id}/vote/",
        form,
        {
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": f"csrftoken={cookie.group(1)}",
        },
    )
    location = headers.get("location", "")
    if status != 302 or "/results/" not in location:
        raise StackError(
            f"scenario check: vote gave {status} (location {location!r}), expected 302 to results",
            "see logs/ for the app server's and nginx's logs",
            body[:500],
        )
    status, _, body = _request(port, "GET", urllib.parse.urlparse(location).path)
    if status != 200:
        raise StackError(f"scenario check: results page gave {status}", "see logs/", body[:500])


@dataclass(frozen=True)
class DebugProbe:
    """Whether the running app has Django's DEBUG on, as its own 404 page shows it; `debug` is
    None when the answer could not show it (a catch-all route, a proxy page)."""

    debug: bool | None
    how: str

    def to_json(self) -> dict[str, object]:
        return {"DEBUG": self.debug, "observed_by": self.how}


def probe_debug(port: int) -> DebugProbe:
    """Ask the running app, through nginx, for a path no app routes: with DEBUG on Django answers
    with its technical 404 page, which names the setting. Read from the app as it runs, not from
    settings the harness wrote (a project may hard-code DEBUG = True)."""
    path = f"/gatewaybench-probe-{secrets.token_hex(6)}/"
    try:
        status, _, body = _request(port, "GET", path)
    except OSError as exc:
        return DebugProbe(None, f"GET {path} failed: {exc}")
    if status != 404:
        return DebugProbe(None, f"GET {path} answered {status}, not 404: DEBUG not observable")
    debug = DEBUG_PAGE_MARK in body.replace("<code>", "").replace("</code>", "")
    page = "Django's debug 404 page" if debug else "a 404 without Django's debug page"
    return DebugProbe(debug, f"GET {path} through nginx answered {page}")
