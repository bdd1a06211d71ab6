"""The signal guard: a signal whose exception Python swallowed still stops the run."""

from __future__ import annotations

import os
import signal

import pytest

from gatewaybench.errors import Interrupted
from gatewaybench.signals import checkpoint, interruptible


class _SignalsInDel:
    """Sends SIGTERM from a finaliser: the handler's exception is ignored there, as it is when
    a signal lands while the garbage collector runs a `__del__`."""

    def __del__(self) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        sum(range(1000))  # bytecode to run, so the pending handler fires inside __del__


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_signal_lost_in_a_finaliser_is_raised_by_the_next_checkpoint() -> None:
    with interruptible() as guard:
        obj = _SignalsInDel()
        del obj  # Python prints "Exception ignored in ..." and carries on
        assert guard.received == [signal.SIGTERM]
        with pytest.raises(Interrupted) as exc:
            checkpoint()
        assert exc.value.exit_code == 143


def test_checkpoint_is_quiet_without_a_signal_and_after_disarming() -> None:
    checkpoint()  # no guard at all
    with interruptible() as guard:
        checkpoint()
        guard.disarm()
        os.kill(os.getpid(), signal.SIGINT)  # recorded only: the results are being written
        checkpoint()
        assert guard.exit_code == 130
    checkpoint()  # the guard is gone with its block


def test_a_signal_during_a_progress_display_stops_it_and_gives_the_cursor_back() -> None:
    import io

    from gatewaybench.progress import Progress, RichDisplay, Unit

    stream = io.StringIO()
    progress = Progress(RichDisplay(stream))
    with pytest.raises(Interrupted), interruptible(), progress.shown():
        progress.plan([Unit("gunicorn", "gunicorn")], {"gunicorn": 1}, 10.0)
        os.kill(os.getpid(), signal.SIGTERM)
        checkpoint()  # the handler has raised by now; this is for a lost exception
    text = stream.getvalue()
    assert text.rindex("\x1b[?25h") > text.rindex("\x1b[?25l")
