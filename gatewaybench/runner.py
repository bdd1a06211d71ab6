"""The matrix: postgres -> migrate+seed -> per server (app -> nginx -> verify -> steps) -> tables.

Each server is a unit of failure: if it fails to start or dies, that is recorded and the matrix
goes on. Every step's row is on disk the moment the step ends. Teardown always runs.
"""

from __future__ import annotations

import shutil
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from gatewaybench.analysis.summary import run_summary
from gatewaybench.backend import Backend
from gatewaybench.calibration import calibrate_rates, calibrate_steps
from gatewaybench.cells import run_cell
from gatewaybench.context import Context, RunDatabase
from gatewaybench.errors import GatewaybenchError, Interrupted
from gatewaybench.matrix import effective, warnings_for
from gatewaybench.progress import Progress, Unit
from gatewaybench.report.render import render_run
from gatewaybench.results import provenance, stale
from gatewaybench.results.rundir import RunRecorder, create_run_dir
from gatewaybench.signals import interruptible
from gatewaybench.spec import RunSpec, sized_max_connections
from gatewaybench.stack.local import LocalBackend


def run_bench(
    spec: RunSpec,
    environ: Mapping[str, str],
    *,
    out: TextIO = sys.stdout,
    log: TextIO = sys.stderr,
    backend_for: Callable[[RunSpec], Backend] = LocalBackend.create,
    progress: str = "off",
) -> int:
    """Run the matrix on a backend (default: local processes); print the seed tables and, as the
    last line, the run directory. `environ` is what child processes start from (the CLI's
    environment); `progress` is how the run shows where it is on `log` (progress.MODES)."""
    with interruptible() as guard:
        try:
            backend = backend_for(spec)  # usage errors surface before anything is created
            for message in stale.recover_stale_runs(spec.reports_dir.absolute()):
                print(f"gatewaybench: {message}", file=log)
            run_dir = create_run_dir(spec.reports_dir.absolute(), spec.run_label)
        except Interrupted as exc:
            return exc.exit_code  # nothing was started or written yet
        try:
            rec = RunRecorder.start(run_dir, _manifest_base(spec, backend))
        except BaseException:
            shutil.rmtree(run_dir)  # ours, just made, holds nothing measured
            raise
        ctx = Context(spec, backend, rec, Progress.create(progress, log), environ)
        where = "" if backend.name == "local" else f" ({backend.name} backend)"
        ctx.say(f"gatewaybench: run directory {run_dir}{where}")
        for warning in rec.manifest["resolved"]["warnings"]:
            ctx.say(f"gatewaybench: warning: {warning}")
        _plan_progress(ctx)
        with ctx.progress.shown():  # gone before the tables reach stdout
            status, code, error = _run_and_classify(ctx)
        guard.disarm()  # from here on a signal waits until the results are written
        rec.finish(status, error)
        print(run_summary(run_dir), file=out)
        report = _render_report(ctx)
        if report is not None:
            print(f"report: {report}", file=out)
        print(run_dir, file=out, flush=True)
        return code if code or guard.exit_code is None else guard.exit_code


def _plan_progress(ctx: Context) -> None:
    """Cells x repeats in the order _run_matrix runs them; steps unknown until calibrated."""
    spec = ctx.spec
    units = [Unit(cell.label if spec.repeat == 1 else f"{cell.label} (repeat {repeat})",
                  cell.label)
             for repeat in range(1, spec.repeat + 1) for cell in spec.cells]  # fmt: skip
    steps = {label: _step_count(ctx, label) for label in ctx.steps}
    load = spec.load
    ctx.progress.plan(units, steps, load.ramp_s + load.warmup_s + load.window_s)


def _step_count(ctx: Context, label: str) -> int | None:
    """A cell's steps over its models (None: not known until calibrated)."""
    models = ctx.spec.load.models
    counts = [len(ctx.steps[label]) if "closed" in models else -1,
              len(ctx.rates[label]) if "open" in models else -1]  # fmt: skip
    return None if 0 in counts else sum(c for c in counts if c > 0)


def _render_report(ctx: Context) -> Path | None:
    """The HTML report; a failure to render loses nothing (it can be rebuilt from disk)."""
    try:
        paths = render_run(ctx.run_dir)
    except Exception as exc:  # the measured results are already safe on disk
        ctx.say(f"gatewaybench: the report could not be rendered ({type(exc).__name__}: {exc}); "
                f"rebuild it with: gatewaybench report {ctx.run_dir}")  # fmt: skip
        return None
    return paths[0]


def _run_and_classify(ctx: Context) -> tuple[str, int, str | None]:
    return classify_matrix(lambda: _run_matrix(ctx), ctx.say)


def classify_matrix(
    run_matrix: Callable[[], list[str]], say: Callable[[str], None]
) -> tuple[str, int, str | None]:
    """(manifest status, exit code, error) of running a matrix (which returns the cells that
    failed); never raises, so what finished is always recorded. Shared by both backends."""
    try:
        failed = run_matrix()
    except Interrupted as exc:
        return "interrupted", exc.exit_code, f"interrupted by signal {exc.signum}"
    except GatewaybenchError as exc:
        say(f"gatewaybench: {exc.one_line()}")
        if exc.detail:
            say(exc.detail)
        return "failed", exc.exit_code, exc.one_line()
    except Exception as exc:  # a bug or an unexpected failure: still record what finished
        say(traceback.format_exc())
        return "failed", 1, f"unexpected error: {type(exc).__name__}: {exc}"
    if failed:
        return "failed", 1, "servers failed: " + ", ".join(failed)
    return "complete", 0, None


def _manifest_base(spec: RunSpec, backend: Backend) -> dict[str, Any]:
    return {
        "label": spec.run_label,
        "backend": backend.name,
        "harness": stale.harness_identity(),
        "spec": spec.to_json(),
        "resolved": {
            **backend.manifest_resolved(spec),
            "spawn_rate_per_step": {u: spec.load.spawn_rate(u) for u in spec.load.users}
            if "closed" in spec.load.models
            else {},
            # on disk the budget's workers are "processes" (a manifest key, kept as it is)
            "budget": {"processes": spec.workers, "threads": spec.threads},
            "pg_max_connections": sized_max_connections(spec),
            "warnings": matrix_warnings(spec),
        },
        "versions": backend.versions(),
        "machine": provenance.machine(),
        "git": provenance.git_info(),
    }


def matrix_warnings(spec: RunSpec) -> list[str]:
    """Once per variant: a wait changes how long a connection is held, not whether it leaks."""
    limit = sized_max_connections(spec)
    variants = dict.fromkeys(replace(c, upstream_ms=None) for c in spec.cells)
    return [w for c in variants for w in warnings_for(c, effective(c, spec.budget), limit)]


def _calibrate(ctx: Context, db: RunDatabase) -> None:
    """--users auto and --rate auto, each for its own model, before any cell's steps; then the
    progress display learns the steps."""
    load = ctx.spec.load
    wanted = (
        (not load.users and "closed" in load.models, "calibrating", "calibrate", calibrate_steps),
        (not load.rates and "open" in load.models, "calibrating the open model", "calibrate open",
         calibrate_rates),
    )  # fmt: skip
    ran = False
    for needed, shown, phase, calibrate in wanted:
        if needed:
            ctx.progress.phase(shown)
            with ctx.rec.phase(phase):
                calibrate(ctx, db)
            ran = True
    if ran:
        for label in ctx.steps:
            ctx.progress.set_steps(label, _step_count(ctx, label) or 0)


def _run_matrix(ctx: Context) -> list[str]:
    spec = ctx.spec
    with ctx.backend.session(ctx):
        db = RunDatabase(ctx)
        try:
            db.start()
            _calibrate(ctx, db)
            failed: list[str] = []
            # Repeats interleave cells (A B C, A B C) so slow drift hits every cell alike.
            for repeat in range(1, spec.repeat + 1):
                for cell in spec.cells:
                    if not run_cell(ctx, cell, db.ensure_alive(), repeat):
                        failed.append(
                            cell.label if spec.repeat == 1 else f"{cell.label} (repeat {repeat})"
                        )
            return failed
        finally:
            db.close()
