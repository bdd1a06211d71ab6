"""Small supervised child processes: own process group, log file, parent-death signal, readiness.

Every child gets its own session (so a terminal's Ctrl-C reaches only the harness, which then
tears children down in order) and PR_SET_PDEATHSIG (so a harness killed with SIGKILL does not
leave them running). Stopping signals the whole group, waits, then kills: nothing we started
outlives us, and nothing we did not start is touched.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gatewaybench.errors import Interrupted, StackError
from gatewaybench.signals import checkpoint
from gatewaybench.stack.procstat import iter_stats

PR_SET_PDEATHSIG = 1
POLL_INTERVAL_S = 0.1
TAIL_LINES = 20
GROUP_GRACE_S = 5.0  # how long members that outlive their group leader get to exit


# Loaded once here: the child between fork and exec must not dlopen (a lock another thread of
# ours might hold at fork time). The harness starts children only while no sampler thread runs.
_LIBC = ctypes.CDLL(None, use_errno=True)


def _set_parent_death_signal() -> None:
    """Runs in the child between fork and exec (after any uid change, which would clear it)."""
    _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def group_alive(pgid: int) -> bool:
    """Is any live (not zombie) process still in this process group? Read from /proc."""
    return any(st.pgrp == pgid and st.live for st in iter_stats())


def tail(path: Path, lines: int = TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class ManagedProcess:
    name: str
    argv: list[str]
    log_path: Path
    popen: subprocess.Popen[bytes]
    stop_signal: int = signal.SIGTERM
    started_at: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self) -> str:
        return tail(self.log_path)

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """Signal the group, wait up to timeout_s, then SIGKILL it. Returns the exit code."""
        if self.alive():
            self._signal_group(self.stop_signal)
            try:
                self.popen.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.popen.wait(timeout=timeout_s)
        self._drain_group(min(timeout_s, GROUP_GRACE_S))
        return self.popen.returncode

    def _drain_group(self, grace_s: float) -> None:
        """Members may outlive the leader (initdb's bootstrap backend, a server's workers).
        Give them the grace to finish their own cleanup (a SIGKILLed PostgreSQL leaves its
        shared memory behind), then kill whatever is left."""
        deadline = time.monotonic() + grace_s
        while group_alive(self.popen.pid):
            if time.monotonic() > deadline:
                self._signal_group(signal.SIGKILL)
                return
            time.sleep(POLL_INTERVAL_S)

    def _signal_group(self, sig: int) -> None:
        # The group id is the pid: we made the child a session leader.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)


def start(
    name: str,
    argv: Sequence[str],
    *,
    log_path: Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    user: str | None = None,
    stop_signal: int = signal.SIGTERM,
) -> ManagedProcess:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        try:
            popen = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=dict(env) if env is not None else None,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                user=user,
                preexec_fn=_set_parent_death_signal,  # noqa: PLW1509  (no threads spawn children)
            )
        except OSError as exc:
            raise StackError(
                f"could not start {name} ({argv[0]}): {exc.strerror}",
                "run `gatewaybench doctor` to check the installation",
            ) from None
    return ManagedProcess(name, list(argv), log_path, popen, stop_signal)


def run_to_completion(
    name: str,
    argv: Sequence[str],
    *,
    log_path: Path,
    timeout_s: float,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    user: str | None = None,
    finish_on_interrupt: bool = False,
) -> None:
    """Run a one-shot command (initdb, migrate, seed); a failure carries its log tail.

    With finish_on_interrupt, a Ctrl-C/SIGTERM lets the command finish before it propagates:
    initdb interrupted mid-bootstrap deletes the data directory under its still-running
    backend, which then dies without removing its shared memory.
    """
    proc = start(name, argv, log_path=log_path, cwd=cwd, env=env, user=user)
    try:
        code = _wait(proc, timeout_s, finish_on_interrupt)
    except subprocess.TimeoutExpired:
        proc.stop()
        raise StackError(
            f"{name} did not finish within {timeout_s:g} s",
            f"see {log_path}",
            proc.log_tail(),
        ) from None
    finally:
        proc.stop()
    if code != 0:
        raise StackError(f"{name} failed with exit code {code}", f"see {log_path}", proc.log_tail())


def _wait(proc: ManagedProcess, timeout_s: float, finish_on_interrupt: bool) -> int:
    try:
        return proc.popen.wait(timeout=timeout_s)
    except Interrupted:
        if finish_on_interrupt:
            proc.popen.wait(timeout=timeout_s)  # later signals are ignored by the guard
        raise


def wait_until(
    proc: ManagedProcess,
    what: str,
    ready: Callable[[], bool],
    timeout_s: float,
) -> float:
    """Poll `ready` until it holds, the deadline passes or the process dies. Returns seconds taken.

    The error says what was awaited, for how long, and shows the tail of the process's log.
    """
    start_t = time.monotonic()
    deadline = start_t + timeout_s
    while True:
        if not proc.alive():
            raise StackError(
                f"{proc.name} exited with code {proc.popen.returncode} while waiting for {what}",
                f"see {proc.log_path}",
                proc.log_tail(),
            )
        if ready():
            return time.monotonic() - start_t
        if time.monotonic() > deadline:
            raise StackError(
                f"{proc.name}: {what} not ready after {timeout_s:g} s",
                f"see {proc.log_path}",
                proc.log_tail(),
            )
        checkpoint()
        time.sleep(POLL_INTERVAL_S)
