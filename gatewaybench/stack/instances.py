"""Run N copies of a server that has no workers option on one shared listening socket.

    python -m gatewaybench.stack.instances --count N --host H --port P -- ARGV...

The socket is bound here, moved to file descriptor 3 and inherited by every copy (ARGV must make
the server adopt fd 3, e.g. daphne's --fd=3), so the kernel spreads connections across them the
way it does for gunicorn's or uvicorn's workers. This process exits as soon as any copy exits,
with that copy's code, so a crash is seen by the harness like any server's exit. The copies share
this process's group, so the harness stops them all by signalling the group.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence

SHARED_FD = 3
BACKLOG = 1024


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    return sock


def run(count: int, host: str, port: int, argv: Sequence[str]) -> int:
    fd = _listen(host, port).detach()
    if fd == SHARED_FD:
        os.set_inheritable(fd, True)
    else:
        os.dup2(fd, SHARED_FD)  # dup2 makes the copy inheritable
        os.close(fd)
    children = [
        subprocess.Popen(list(argv), pass_fds=(SHARED_FD,), stdin=subprocess.DEVNULL)
        for _ in range(count)
    ]
    os.close(SHARED_FD)  # only the copies accept
    # SIGTERM reaches the copies too (the harness signals the group); just wait for them.
    signal.signal(signal.SIGTERM, lambda *_: None)
    pid, status = os.wait()
    code = os.waitstatus_to_exitcode(status)
    for child in children:
        if child.pid != pid and child.poll() is None:
            child.terminate()
    for child in children:
        if child.pid != pid:
            child.wait()
    return code if code >= 0 else 128 - code


def main(args: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gatewaybench.stack.instances")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("argv", nargs=argparse.REMAINDER)
    a = parser.parse_args(args)
    argv = a.argv[1:] if a.argv[:1] == ["--"] else a.argv
    return run(a.count, a.host, a.port, argv)


if __name__ == "__main__":
    sys.exit(main())
