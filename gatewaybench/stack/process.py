"""Small supervised child processes: own process group, log file, parent-death signal, readiness.

Every child gets its own session (so a terminal's Ctrl-C reaches only the harness, which then
tears children down in order) and a parent-death signal (so a harness killed with SIGKILL does
not leave them running). Stopping signals the whole group, waits, then kills: nothing we started
outlives us, and nothing we did not start is touched.

The parent-death signal is set by util-linux's `setpriv --pdeathsig`, exec'd in front of the
command, not by a preexec_fn: Python code between fork and exec is unsafe while other threads
run (a lock one of them held at the fork stays held in the child), and the harness does run
threads while it starts children (resource samplers, the gate's duet running both sides' steps
at once). Without a preexec_fn, subprocess forks and execs in C. setpriv sets the signal after
any uid change (`user=`), which would clear it, and the signal survives its exec. As with any
PR_SET_PDEATHSIG, the "parent" is the thread that started the child: start children from a
thread that outlives them (the main thread, or a duet step's thread, which waits for its Locust).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gatewaybench.errors import Interrupted, StackError
from gatewaybench.signals import checkpoint
from gatewaybench.stack.procstat import iter_stats

POLL_INTERVAL_S = 0.1
TAIL_LINES = 20
GROUP_GRACE_S = 5.0  # how long members that outlive their group leader get to exit


PDEATHSIG = "TERM"  # what a child gets when the thread that started it dies


def _setpriv() -> str:
    found = shutil.which("setpriv")
    if found is None:
        raise StackError(
            "setpriv (util-linux) is not installed: children cannot be tied to the harness",
            "install util-linux (apt-get install util-linux)",
        )
    return found


def _executable(argv0: str, cwd: Path | None, env: Mapping[str, str] | None) -> str | None:
    """argv0 as it would be exec'd, or None when there is no such executable (checked here
    because setpriv, not Popen, now execs it: a missing one must still fail at start)."""
    if "/" not in argv0:
        # env None: the child inherits ours, whose PATH shutil.which reads by default
        return shutil.which(argv0, path=None if env is None else env.get("PATH", os.defpath))
    full = Path(cwd or ".") / argv0
    return str(full) if os.access(full, os.X_OK) and full.is_file() else None


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
    if _executable(argv[0], cwd, env) is None:
        raise StackError(
            f"could not start {name} ({argv[0]}): no such executable",
            "run `gatewaybench doctor` to check the installation",
        )
    tied = [_setpriv(), f"--pdeathsig={PDEATHSIG}", "--", *argv]
    with log_path.open("ab") as log:
        try:
            popen = subprocess.Popen(
                tied,
                cwd=cwd,
                env=dict(env) if env is not None else None,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                user=user,
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
