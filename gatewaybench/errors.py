"""One exception family, caught once in cli.main, each carrying the fix a user should apply."""

from __future__ import annotations


class GatewaybenchError(Exception):
    """Base: `problem` says what is wrong, `fix` says what to do about it."""

    exit_code = 1

    def __init__(self, problem: str, fix: str = "", detail: str = "") -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix
        self.detail = detail  # e.g. a log tail; printed after the one-line summary

    def one_line(self) -> str:
        return f"{self.problem}; {self.fix}" if self.fix else self.problem


class UsageError(GatewaybenchError):
    """Bad input a user can correct: nothing was started, nothing was written."""

    exit_code = 2


class StackError(GatewaybenchError):
    """A component of the stack failed to start or died."""


class Interrupted(BaseException):
    """Raised from a signal handler so that every `with` block unwinds and tears down."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum
