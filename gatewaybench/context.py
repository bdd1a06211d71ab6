"""What one run shares across cells: the spec, the backend, the recorder, the database.

The database is restarted from scratch (create, migrate, seed) when it has died, so one
PostgreSQL crash fails the cell it happened in and the matrix goes on with the next.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path

from gatewaybench.backend import Backend, Database
from gatewaybench.progress import Progress
from gatewaybench.results.rundir import RunRecorder
from gatewaybench.spec import RunSpec

# Every child process of a run carries its run directory here, so anything a run started can be
# found by its environment, even a process whose command line names nothing of the run (the
# tests' leftover checks and scripts/interrupt_soak.py look for it).
RUN_MARKER_ENV = "GATEWAYBENCH_RUN_DIR"


class Context:
    """What one run shares across cells: spec, backend, recorder, calibrated steps, the
    environment the CLI read (children start from it) and the progress display."""

    def __init__(
        self,
        spec: RunSpec,
        backend: Backend,
        rec: RunRecorder,
        progress: Progress,
        environ: Mapping[str, str],
    ) -> None:
        self.spec = spec
        self.backend = backend
        self.rec = rec
        self.progress = progress
        self.environ = environ
        self.question_ids: tuple[int, ...] = ()
        # Each cell's steps (by label): the spec's, or, with --users auto, calibrated.
        self.steps: dict[str, tuple[int, ...]] = {c.label: spec.load.users for c in spec.cells}
        self.bracketed: set[str] = set()  # cells whose steps were placed around their own knee
        # Each cell's open-model rates, arrivals/s: the spec's, or, with --rate auto, calibrated.
        self.rates: dict[str, tuple[float, ...]] = {c.label: spec.load.rates for c in spec.cells}

    @property
    def run_dir(self) -> Path:
        return self.rec.path

    def say(self, message: str) -> None:
        """A line on stderr (through the progress display, which must not be drawn over)."""
        self.progress.say(message)

    def child_env(self) -> dict[str, str]:
        """The environment a child process starts from: the CLI's, marked with this run."""
        return {**self.environ, RUN_MARKER_ENV: str(self.run_dir)}


class RunDatabase:
    """The run's PostgreSQL, migrated and seeded by the backend; restartable."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._stack = ExitStack()
        self._db: Database | None = None
        self.starts = 0

    @property
    def db(self) -> Database:
        assert self._db is not None, "start() first"
        return self._db

    def start(self) -> Database:
        self.starts += 1
        phase = "postgres" if self.starts == 1 else f"postgres (restart {self.starts - 1})"
        with self.ctx.rec.phase(phase):
            self._db = self.ctx.backend.start_database(self.ctx, self._stack)
        return self._db

    def ensure_alive(self) -> Database:
        """The database, started afresh if it died (its log keeps the evidence)."""
        problem = self.db.exit_problem()
        if problem is None:
            return self.db
        self.ctx.say(
            f"gatewaybench: {problem.problem}; starting a fresh cluster for the remaining cells"
        )
        self.close()
        return self.start()

    def close(self) -> None:
        stack, self._stack = self._stack, ExitStack()
        stack.close()
