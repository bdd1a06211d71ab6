"""The one seam between the run and where its components live: local processes or containers.

A backend starts, health-checks, measures (CPU, memory, logs) and tears down the components:
PostgreSQL (migrated and seeded), and per cell the delayed upstream, the app server and nginx.
Everything else — the matrix, cells, steps, calibration, repeats, signals, log caps, audits,
analysis and reports — is the same code for every backend and talks to it only through the
protocols here. `gatewaybench.stack.local` is the local-process backend, `gatewaybench.compose
.backend` the container one.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from gatewaybench.errors import StackError
from gatewaybench.matrix import Cell
from gatewaybench.spec import LoadSettings, RunSpec
from gatewaybench.stack.postgres import Dsn

if TYPE_CHECKING:
    from gatewaybench.context import Context
    from gatewaybench.load.locust_runner import StepPlan
    from gatewaybench.load.measure import CellStack, StepLogs


class Database(Protocol):
    """The run's PostgreSQL, migrated and seeded, reachable from this machine."""

    @property
    def dsn(self) -> Dsn:
        """The harness's own role (counts votes, resets data), on the app's database."""
        ...

    def exit_problem(self) -> StackError | None:
        """None while it runs; else what ended it, as the error to report."""
        ...


@dataclass(frozen=True)
class Measured:
    """What running one step's load produced besides the records on disk."""

    code: int | None  # Locust's exit code; None: the harness had to stop it
    samples: dict[str, Any]  # resources.json: per component, one sample a second


class Components(Protocol):
    """One cell's running components, as a step measures them."""

    def run_load(self, load: LoadSettings, plan: StepPlan, log_path: Path) -> Measured:
        """Locust for one step (its records into plan.record_dir), resources sampled meanwhile."""
        ...

    def mark(self) -> object:
        """Where every component's log is now (for logs_since)."""
        ...

    def logs_since(self, mark: object) -> StepLogs:
        """What each component logged after `mark`."""
        ...

    def dead(self) -> StackError | None:
        """The first component found dead, as the error to report (None: all alive)."""
        ...

    def bound_logs(self) -> list[str]:
        """Cut every log grown past the cap (after the step's slices were analysed); the names
        of those cut."""
        ...


class Backend(Protocol):
    """Where a run's components live. Created before the run directory (usage errors first)."""

    name: str

    def manifest_resolved(self, spec: RunSpec) -> dict[str, Any]:
        """What this backend resolved, for the manifest's `resolved`."""
        ...

    def versions(self) -> dict[str, str]:
        """The versions it can tell before anything runs, for the manifest's `versions`."""
        ...

    def session(self, ctx: Context) -> AbstractContextManager[None]:
        """What lives for the whole run (an engine, images, a network), torn down on exit."""
        ...

    def start_database(self, ctx: Context, stack: ExitStack) -> Database:
        """PostgreSQL started, migrated and seeded (ctx.question_ids set); stopped by `stack`."""
        ...

    def start_cell(
        self, ctx: Context, stack: ExitStack, cell: Cell, label: str, db: Database
    ) -> CellStack:
        """The cell's upstream (when it waits), app server and nginx, each healthy; stopped by
        `stack`. The caller verifies the scenario through nginx."""
        ...

    def cell_facts(self, ctx: Context, cell: Cell) -> dict[str, Any]:
        """How this backend runs the cell (argv, replicas), for the manifest."""
        ...
