"""An independent count from nginx's access log, to cross-check the harness's own recording.

Format (nginx/nginx.conf.j2): `$msec $status $request_time $upstream_response_time "$method $uri"
$body_bytes_sent`. nginx stamps a request when it finishes, on the same clock as the client.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from gatewaybench.analysis.histogram import Histogram

COUNT_TOLERANCE_PCT = 1.0
# nginx stamps a request when it logs it and the generator when it reads the response: one
# request at each edge of the window can fall on either side, whatever the rate.
EDGE_REQUESTS = 2
P50_TOLERANCE_PCT = 10.0
# nginx's $request_time has millisecond resolution, and the client's own time (Python parsing,
# loopback) adds about a millisecond on top: below this, a p50 difference is not evidence.
P50_TOLERANCE_MS = 2.5


# The polls views call the delayed upstream; the health check and slow uploads do not.
UPSTREAM_CALLERS = "/polls/"
UPLOAD_URI = "/polls/upload/"  # the slow clients' (loadtests/slowupload.py): not normal users


@dataclass(frozen=True)
class AccessEntry:
    msec: float
    status: int
    request_time_ms: float
    uri: str = ""

    @property
    def calls_upstream(self) -> bool:
        return self.uri.startswith(UPSTREAM_CALLERS) and self.uri != UPLOAD_URI


@dataclass(frozen=True)
class CrossCheck:
    nginx_requests: int
    nginx_p50_ms: float
    agrees: bool
    note: str


def parse_access(text: str) -> list[AccessEntry]:
    entries = []
    for line in text.splitlines():
        parts = line.split(" ", 3)
        try:
            entries.append(
                AccessEntry(float(parts[0]), int(parts[1]), float(parts[2]) * 1000, _uri(parts[3]))
            )
        except (IndexError, ValueError):
            continue  # a line cut by rotation or a foreign format: not evidence either way
    return entries


def median_ms(times_ms: Iterable[float]) -> float:
    """The median of nginx's $request_time values (ms), as our own histograms compute it."""
    hist = Histogram()
    for ms in times_ms:
        hist.counts[round(ms * 1000)] += 1
    return hist.percentile_ms(50)


def _uri(rest: str) -> str:
    """The $uri of `$upstream_response_time "$request_method $uri" $body_bytes_sent`."""
    quoted = rest.split('"')
    return quoted[1].partition(" ")[2] if len(quoted) > 2 else ""


def cross_check(
    entries: list[AccessEntry], start: int, end: int, requests: int, p50_ms: float
) -> CrossCheck:
    inside = [e for e in entries if start <= e.msec < end]
    nginx_p50 = median_ms(e.request_time_ms for e in inside)
    problems = []
    apart = abs(len(inside) - requests)
    count_diff = apart / requests * 100 if requests else math.inf
    if count_diff > COUNT_TOLERANCE_PCT and (apart > EDGE_REQUESTS or not requests):
        problems.append(
            f"nginx saw {len(inside)} requests vs {requests} recorded ({count_diff:.1f}% apart)"
        )
    p50_diff = abs(nginx_p50 - p50_ms)
    limit = max(P50_TOLERANCE_MS, P50_TOLERANCE_PCT / 100 * p50_ms)
    if not math.isnan(nginx_p50) and p50_diff > limit:
        problems.append(f"nginx p50 {nginx_p50:.0f} ms vs {p50_ms:.0f} ms recorded")
    return CrossCheck(len(inside), nginx_p50, not problems, "; ".join(problems))
