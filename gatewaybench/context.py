"""What one run shares across cells: the spec, the recorder, the database cluster.

The cluster is restarted from scratch (initdb, migrate, seed) when it has died, so one
PostgreSQL crash fails the cell it happened in and the matrix goes on with the next.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from gatewaybench import preflight
from gatewaybench.results.rundir import RunRecorder
from gatewaybench.spec import RunSpec, sized_max_connections
from gatewaybench.stack import app, pollsdb, postgres
from gatewaybench.stack.app import AppEnv


class Context:
    """What one run shares across servers: spec, where things are, the database."""

    def __init__(
        self, spec: RunSpec, resolved: preflight.Resolved, rec: RunRecorder, log: TextIO
    ) -> None:
        self.spec = spec
        self.resolved = resolved
        self.rec = rec
        self.log = log
        self.base_env = dict(os.environ)
        self.app_env: AppEnv | None = None
        self.question_ids: tuple[int, ...] = ()
        # Each cell's steps (by label): the spec's, or, with --users auto, calibrated.
        self.steps: dict[str, tuple[int, ...]] = {c.label: spec.load.users for c in spec.cells}
        self.bracketed: set[str] = set()  # cells whose steps were placed around their own knee

    @property
    def run_dir(self) -> Path:
        return self.rec.path

    def say(self, message: str) -> None:
        print(message, file=self.log, flush=True)


class RunDatabase:
    """The run's private PostgreSQL cluster, migrated and seeded; restartable."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._stack = ExitStack()
        self._cluster: postgres.Cluster | None = None
        self.starts = 0

    @property
    def cluster(self) -> postgres.Cluster:
        assert self._cluster is not None, "start() first"
        return self._cluster

    def start(self) -> postgres.Cluster:
        ctx, spec = self.ctx, self.ctx.spec
        logs = ctx.run_dir / "logs"
        self.starts += 1
        phase = "postgres" if self.starts == 1 else f"postgres (restart {self.starts - 1})"
        with ctx.rec.phase(phase):
            self._cluster = self._stack.enter_context(
                postgres.running_cluster(
                    ctx.resolved.pg_bins,
                    ctx.run_dir,
                    logs,
                    ctx.resolved.pg_port,
                    replace(spec.postgres, max_connections=sized_max_connections(spec)),
                )
            )
        resolved = ctx.rec.manifest["resolved"]
        resolved["postgres_data_dir"] = str(self.cluster.data_dir)
        resolved["postgres_socket_dir"] = str(self.cluster.socket_dir)
        ctx.rec.save_manifest()  # before any load: a killed harness leaves these findable
        ctx.app_env = AppEnv.create(self.cluster.app_dsn, spec.django, spec.app)
        with ctx.rec.phase("migrate+seed"):
            app.prepare_database(ctx.app_env, ctx.base_env, logs)
            if spec.app.is_sample:
                ctx.question_ids = tuple(pollsdb.question_ids(self.cluster.dsn))
        return self.cluster

    def ensure_alive(self) -> postgres.Cluster:
        """The cluster, started afresh if it died (its log keeps the evidence)."""
        if self.cluster.proc.alive():
            return self.cluster
        self.ctx.say(
            f"gatewaybench: PostgreSQL exited with code {self.cluster.proc.popen.returncode}; "
            "starting a fresh cluster for the remaining cells"
        )
        self.close()
        return self.start()

    def close(self) -> None:
        stack, self._stack = self._stack, ExitStack()
        stack.close()
