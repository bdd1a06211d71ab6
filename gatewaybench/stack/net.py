"""Loopback ports and HTTP probes. Everything here talks to 127.0.0.1 only."""

from __future__ import annotations

import http.client
import socket

from gatewaybench.errors import UsageError

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A port the kernel considers free right now (the caller binds it moments later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    """Could a server listen here? (SO_REUSEADDR, as servers use: TIME_WAIT does not count.)"""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


def claim_port(flag: str, port: int) -> int:
    """Resolve a configured port: 0 picks a free one; a taken explicit port is a usage error."""
    if port == 0:
        return free_port()
    if not port_is_free(port):
        raise UsageError(
            f"{flag} {port}: port {port} on {LOOPBACK} is already in use",
            f"stop what listens there, choose another port, or pass {flag} 0 for a free one",
        )
    return port


def http_get(port: int, path: str, timeout_s: float = 2.0) -> tuple[int, str]:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout_s)
    try:
        conn.request("GET", path, headers={"Host": LOOPBACK})
        resp = conn.getresponse()
        return resp.status, resp.read().decode("utf-8", "replace")
    finally:
        conn.close()


def http_ok(port: int, path: str, expect: str = "") -> bool:
    try:
        status, body = http_get(port, path)
    except OSError:
        return False
    return status == 200 and expect in body
