"""Slow clients: users that upload a request body at a trickle (the seed ticket's "slow file
uploads"), alongside the voters. A server that reads the body itself holds a worker for the
whole upload unless a buffering proxy (nginx's proxy_request_buffering on) reads it first.

A raw socket, because an HTTP client sends a body as fast as it can. Each upload is reported as
one request named UPLOAD_NAME, so the harness keeps it apart from the normal users' figures.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any
from urllib.parse import urlsplit

import gevent
from locust import User, events, task

from loadtests import listeners

UPLOAD_PATH = "/polls/upload/"
UPLOAD_NAME = f"{UPLOAD_PATH} (slow)"  # recorded as "POST /polls/upload/ (slow)"
TICKS_PER_S = 16  # the body goes out in 16 small writes a second: a steady trickle
SIZE_KB = int(os.environ.get("GB_SLOW_UPLOAD_KB", "64"))
RATE_KBPS = float(os.environ.get("GB_SLOW_UPLOAD_KBPS", "16"))
CLIENT_TIMEOUT_S = float(os.environ.get("GB_CLIENT_TIMEOUT_S", "10"))


def request_head(host: str, size: int) -> bytes:
    return (
        f"POST {UPLOAD_PATH} HTTP/1.1\r\nHost: {host}\r\n"
        "Content-Type: application/octet-stream\r\n"
        f"Content-Length: {size}\r\nConnection: close\r\n\r\n"
    ).encode()


def status_of(response: bytes) -> int:
    """The status code of a raw HTTP/1.1 response (0: none came back)."""
    parts = response.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def upload(host: str, port: int, size: int, rate_kbps: float, timeout_s: float) -> bytes:
    """Send `size` bytes at `rate_kbps` KB/s, then read the whole response."""
    chunk = max(1, int(rate_kbps * 1024 / TICKS_PER_S))
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.sendall(request_head(host, size))
        sent = 0
        while sent < size:
            n = min(chunk, size - sent)
            sock.sendall(b"x" * n)
            sent += n
            gevent.sleep(1 / TICKS_PER_S)
        data = b""
        while part := sock.recv(65536):
            data += part
    return data


class SlowUploader(User):
    wait_time = listeners.recorded_between(1, 2)
    abstract = True  # the locustfile makes a concrete class when the scenario asks for one

    @task
    def slow_upload(self) -> None:
        try:
            self._upload_once()
        finally:
            rec = listeners.recorder()
            if rec is not None:
                rec.task_done()  # Little's law counts every user's cycles, uploaders too

    def _upload_once(self) -> None:
        url = urlsplit(str(self.host))
        size = SIZE_KB * 1024
        timeout_s = size / (RATE_KBPS * 1024) + CLIENT_TIMEOUT_S
        started = time.perf_counter()
        error: Exception | None = None
        body = b""
        try:
            body = upload(url.hostname or "", url.port or 80, size, RATE_KBPS, timeout_s)
            if status_of(body) != 200:
                error = Exception(f"expected 200, got {status_of(body)}")
        except OSError as exc:
            error = exc
        self._report(started, len(body), error)

    def _report(self, started: float, length: int, error: Exception | None) -> None:
        kwargs: dict[str, Any] = {"response": None, "context": {}}
        events.request.fire(
            request_type="POST",
            name=UPLOAD_NAME,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=length,
            exception=error,
            **kwargs,
        )
