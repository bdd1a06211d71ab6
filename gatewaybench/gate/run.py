"""`gatewaybench gate`: base and candidate measured in one job, interleaved A B B A, then judged.

1. Both sides are resolved (a git ref is built in its own worktree) and get their own template
   database in one private PostgreSQL cluster, migrated and seeded by their own code. Every
   trial (and the calibration) runs on a fresh copy of its side's template under one name, so
   no database state lasts a whole gate on one side only.
2. The knee of every cell is found on the base side with the calibration probes; the trials
   use a load below it (half the knee: latency and server CPU per request) and one above it
   (the first level that did not hold, x1.5: the requests/sec plateau).
3. Trials run in blocks A B B A. Before every trial the app server and nginx are started
   afresh on a fresh copy of the side's database; PostgreSQL stays up for both sides alike.
4. gate/verdict.py judges the paired log-ratios; when there is no answer yet (only inconclusive
   results, or a deciding metric worse than the threshold but not significant), the gate runs
   half as many blocks again and judges all of them together.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, TextIO

from gatewaybench import preflight
from gatewaybench.calibration import probe_cell
from gatewaybench.cells import start_cell_stack
from gatewaybench.context import Context
from gatewaybench.errors import Interrupted, UsageError
from gatewaybench.gate.outputs import write_outputs
from gatewaybench.gate.sides import Side, resolved_side
from gatewaybench.gate.verdict import (
    BASE,
    CAND,
    DEFAULT_THRESHOLDS,
    GateThresholds,
    MetricResult,
    Trial,
    gate_exit_code,
    judge_server,
    needs_rerun,
)
from gatewaybench.load import knee_search, measure
from gatewaybench.matrix import Cell
from gatewaybench.progress import Progress, Unit
from gatewaybench.results import provenance, stale
from gatewaybench.results.rundir import RunRecorder, create_run_dir
from gatewaybench.runner import classify_matrix
from gatewaybench.signals import interruptible
from gatewaybench.spec import RunSpec, sized_max_connections
from gatewaybench.stack import app, pollsdb, postgres
from gatewaybench.stack.local import LocalBackend, local_backend

ORDER = (BASE, CAND, CAND, BASE)  # one block; positions 0..3
SUB_KNEE = ("latency_p50_ms", "latency_p95_ms", "cpu_ms_per_req")
ABOVE_KNEE = ("plateau_rps",)
# Past its knee a closed loop cycles slowly (think time + seconds of queueing per task): the
# above-knee step gets at least this much warm-up to settle before its window.
ABOVE_KNEE_WARMUP_S = 5.0
DEFAULT_BLOCKS = 4  # 8 pairs: the fewest for p < 0.01 with one discordant pair to spare
# 10-second windows: with 5 s, a closed loop past its knee (cycles of 3-5 s) failed Little's law
# in half the plateau steps, and sub-knee latency varied twice as much between identical trials.
TRIAL_LOAD: dict[str, Any] = {"ramp_s": 1.0, "warmup_s": 2.0, "window_s": 10, "stop_timeout_s": 3.0}


@dataclass(frozen=True)
class GateOptions:
    base: str
    cand: str
    flags: dict[str, Any]  # `run` flags shared by both sides (servers, workers, threads, ...)
    blocks: int = DEFAULT_BLOCKS
    thresholds: GateThresholds = DEFAULT_THRESHOLDS
    rerun: bool = True
    step_summary: Path | None = None  # a CI job summary that summary.md is appended to


@dataclass(frozen=True)
class Levels:
    knee: int
    low: int
    high: int


TRIAL_DB = "polls_trial"  # the fresh copy a trial runs on, whichever side it is


@dataclass
class SideDb:
    cluster: postgres.Cluster  # with this side's template database in dsn / app_dsn
    app_env: app.AppEnv
    question_ids: tuple[int, ...]

    def fresh_copy(self) -> SideDb:
        """The side on a new copy of its template. A database that served one side for a whole
        gate was a per-side state no pairing cancels: base-vs-base gates found one side's
        sub-knee p95 higher in 10 of 12 pairs."""
        dsn, app_dsn = self.cluster.dsn, self.cluster.app_dsn
        postgres.fresh_copy(dsn, app_dsn.user, dsn.dbname, TRIAL_DB)
        trial_app_dsn = replace(app_dsn, dbname=TRIAL_DB)
        return SideDb(
            replace(self.cluster, dsn=replace(dsn, dbname=TRIAL_DB), app_dsn=trial_app_dsn),
            replace(self.app_env, dsn=trial_app_dsn),
            self.question_ids,
        )


def run_gate(
    opts: GateOptions,
    environ: Mapping[str, str],
    *,
    out: TextIO = sys.stdout,
    log: TextIO = sys.stderr,
    progress: str = "off",
) -> int:
    """`environ`: what child processes start from (the CLI's); `progress`: progress.MODES."""
    with interruptible() as guard, ExitStack() as sides:
        try:
            base = sides.enter_context(resolved_side(BASE, opts.base, opts.flags, log, environ))
            cand = sides.enter_context(resolved_side(CAND, opts.cand, opts.flags, log, environ))
            spec = _trial_spec(base.spec, opts.flags)
            resolved = preflight.check(spec)
            gate_dir = create_run_dir(spec.reports_dir.absolute(), "gate")
        except Interrupted as exc:
            return exc.exit_code
        rec = RunRecorder.start(gate_dir, _manifest(spec, base, cand, opts))
        ctx = Context(spec, LocalBackend(resolved), rec, Progress.create(progress, log), environ)
        ctx.say(f"gatewaybench: gate directory {gate_dir}")
        started = time.monotonic()
        with ctx.progress.shown():  # gone before the summary reaches stdout
            status, results, trials, error = _run_and_classify(ctx, base, cand, opts)
        guard.disarm()
        rec.manifest["gate_seconds"] = round(time.monotonic() - started, 1)
        rec.finish(status, error)
        paths = write_outputs(
            gate_dir, results, trials, rec.manifest["gate_seconds"], opts.step_summary
        )
        if results:
            print((gate_dir / "summary.md").read_text(), file=out)
        for path in paths:
            print(path, file=out)
        print(gate_dir, file=out, flush=True)
        if status == "interrupted":
            return guard.exit_code or 130
        if status != "complete":
            return 3  # no verdict is not a pass
        return gate_exit_code(results)


FLAG_OF = {"ramp_s": "ramp", "warmup_s": "warmup", "window_s": "window",
           "stop_timeout_s": "stop_timeout"}  # fmt: skip


def _trial_spec(spec: RunSpec, flags: dict[str, Any]) -> RunSpec:
    """The trial timings, unless the gate's flags gave their own."""
    load = {k: v for k, v in TRIAL_LOAD.items() if FLAG_OF[k] not in flags}
    return replace(spec, load=replace(spec.load, **load))


def _manifest(spec: RunSpec, base: Side, cand: Side, opts: GateOptions) -> dict[str, Any]:
    return {
        "label": "gate",
        "kind": "gate",
        "harness": stale.harness_identity(),
        "spec": spec.to_json(),
        "sides": {BASE: base.describe(), CAND: cand.describe()},
        "gate": {
            "blocks": opts.blocks,
            "order": list(ORDER),
            "thresholds": asdict(opts.thresholds),
            "trial_load": TRIAL_LOAD,
            "trial_database": f"{TRIAL_DB}: a fresh copy of the side's template per trial",
        },
        "resolved": {
            # on disk the budget's workers are "processes" (a manifest key, kept as it is)
            "budget": {"processes": spec.workers, "threads": spec.threads},
            "pg_max_connections": sized_max_connections(spec),
            "warnings": [],
        },
        "versions": provenance.package_versions(),
        "machine": provenance.machine(),
        "git": provenance.git_info(),
    }


def _run_and_classify(
    ctx: Context, base: Side, cand: Side, opts: GateOptions
) -> tuple[str, list[MetricResult], list[tuple[str, Trial]], str | None]:
    """The runner's classification, so a gate fails, or is interrupted, like a run does."""
    trials: list[tuple[str, Trial]] = []
    results: list[MetricResult] = []

    def run() -> list[str]:
        results.extend(_gate(ctx, {BASE: base, CAND: cand}, opts, trials))
        return []

    status, _code, error = classify_matrix(run, ctx.say)
    return status, results, trials, error


def _gate(
    ctx: Context, sides: dict[str, Side], opts: GateOptions, trials: list[tuple[str, Trial]]
) -> list[MetricResult]:
    spec = ctx.spec
    levels = _given_levels(spec, opts) or {}
    _plan_progress(ctx, range(opts.blocks), calibrated=len(levels) == len(spec.cells))
    with _cluster(ctx) as cluster:
        dbs = {name: _side_database(ctx, cluster, side) for name, side in sides.items()}
        with ctx.rec.phase("calibrate (base)"):
            for cell in spec.cells:
                if cell.label not in levels:
                    ctx.progress.phase(f"calibrating {cell.label} (base)")
                    levels[cell.label] = _calibrate(ctx, sides[BASE], dbs[BASE], cell)
        ctx.progress.set_steps(TRIAL, len(TRIAL_STEPS))
        rounds = [range(opts.blocks)]
        if opts.rerun:
            rounds.append(range(opts.blocks, opts.blocks + rerun_blocks(opts.blocks)))
        for round_no, blocks in enumerate(rounds, 1):
            if round_no > 1:
                ctx.progress.add_units(_trial_units(ctx.spec.cells, blocks))
            with ctx.rec.phase(f"trials (round {round_no})"):
                for block in blocks:
                    trials += _block(ctx, sides, dbs, levels, block)
            results = _judge(spec.cells, trials, opts.thresholds)
            if not needs_rerun(results, opts.thresholds) or round_no == len(rounds):
                break
            ctx.say(f"gatewaybench: no answer yet (inconclusive, or worse than "
                    f"{opts.thresholds.regress_pct:g} % but not significant); running "
                    f"{len(rounds[1])} more blocks and judging all of them together")  # fmt: skip
        return results


TRIAL = "trial"  # every trial has the same steps: one key for the progress display's plan
TRIAL_STEPS = ("below the knee", "above the knee")


def _plan_progress(ctx: Context, blocks: range, *, calibrated: bool) -> None:
    """The first round's trials; their steps are counted only once the calibration (whose
    own length is unknown) is over, so there is no estimate before then."""
    load = ctx.spec.load
    ctx.progress.plan(
        _trial_units(ctx.spec.cells, blocks),
        {TRIAL: len(TRIAL_STEPS) if calibrated else None},
        load.ramp_s + load.warmup_s + load.window_s,
        noun="trial",
    )


def _trial_units(cells: tuple[Cell, ...], blocks: range) -> list[Unit]:
    """In _block's order: block by block, A B B A, cell by cell."""
    return [Unit(f"{name}:{cell.label} {Slot(block, position).tag}", TRIAL)
            for block in blocks for position, name in enumerate(ORDER)
            for cell in cells]  # fmt: skip


def rerun_blocks(blocks: int) -> int:
    """The re-run's blocks: half as many again (at least two, one more pair per metric than a
    single discordant trial can spoil), so a re-run gate still fits its 15 minutes."""
    return max(2, blocks // 2)


def _given_levels(spec: RunSpec, opts: GateOptions) -> dict[str, Levels] | None:
    """`--users LOW,HIGH` fixes both loads (no calibration): reproducible, and quick in tests."""
    if "users" not in opts.flags:
        return None
    users = spec.load.users
    if len(users) != 2:
        raise UsageError(
            f"gate --users {','.join(map(str, users))}: give two loads, below and above the knee",
            "e.g. --users 20,200, or leave --users out to calibrate",
        )
    return {cell.label: Levels(0, users[0], users[1]) for cell in spec.cells}


@contextmanager
def _cluster(ctx: Context) -> Iterator[postgres.Cluster]:
    settings = replace(ctx.spec.postgres, max_connections=sized_max_connections(ctx.spec))
    with ExitStack() as stack:
        with ctx.rec.phase("postgres"):
            cluster = stack.enter_context(
                postgres.running_cluster(
                    local_backend(ctx).resolved.pg_bins,
                    ctx.run_dir,
                    ctx.run_dir / "logs",
                    local_backend(ctx).resolved.pg_port,
                    settings,
                    env=ctx.child_env(),
                )
            )
        yield cluster


def _side_database(ctx: Context, cluster: postgres.Cluster, side: Side) -> SideDb:
    """A database of the side's own, migrated and seeded by the side's own code."""
    name = f"polls_{side.name}"
    postgres.create_app_database(cluster.dsn, cluster.app_dsn.user, name)
    side_cluster = replace(
        cluster,
        dsn=replace(cluster.dsn, dbname=name),
        app_dsn=replace(cluster.app_dsn, dbname=name),
    )
    env = app.AppEnv.create(side_cluster.app_dsn, side.spec.django, side.spec.app)
    env = replace(env, sample_root=side.sample_root, python=side.python)
    with ctx.rec.phase(f"migrate+seed ({side.name})"):
        app.prepare_database(env, ctx.child_env(), ctx.run_dir / "logs")
        # Settled once, so every copy starts with the same statistics and visibility map
        # instead of whatever autovacuum had reached when it was taken.
        pollsdb.vacuum_analyze(side_cluster.dsn)
    return SideDb(side_cluster, env, tuple(pollsdb.question_ids(side_cluster.dsn)))


@contextmanager
def _as_side(ctx: Context, side: Side, db: SideDb) -> Iterator[None]:
    """Point the shared context at one side (its spec's app settings, environment, data)."""
    local = local_backend(ctx)
    saved = (ctx.spec, local.app_env, ctx.question_ids)
    ctx.spec = replace(side.spec, load=ctx.spec.load, cells=ctx.spec.cells)
    local.app_env, ctx.question_ids = db.app_env, db.question_ids
    try:
        yield
    finally:
        ctx.spec, local.app_env, ctx.question_ids = saved


def _calibrate(ctx: Context, side: Side, db: SideDb, cell: Cell) -> Levels:
    db = db.fresh_copy()
    with _as_side(ctx, side, db):
        probes = probe_cell(ctx, cell, db.cluster, f"calibrate-{cell.label}")
    knee = knee_search.knee(probes)
    failed_at = probes[-1].users if not probes[-1].held else 2 * probes[-1].users
    levels = Levels(knee, max(knee_search.MIN_USERS, knee // 2), max(failed_at * 3 // 2, 10))
    ctx.rec.manifest.setdefault("calibration", {})[cell.label] = {
        "knee_users": knee, "low_users": levels.low, "high_users": levels.high,
        "probes": [asdict(p) for p in probes],
    }  # fmt: skip
    ctx.rec.save_manifest()
    ctx.say(f"[{cell.label}] knee {knee} users: trials at {levels.low} and {levels.high} users")
    return levels


@dataclass(frozen=True)
class Slot:
    """Where a trial sits: its block and its position (0..3) in A B B A."""

    block: int
    position: int

    @property
    def tag(self) -> str:
        return f"b{self.block}p{self.position}"


def _block(
    ctx: Context,
    sides: dict[str, Side],
    dbs: dict[str, SideDb],
    levels: dict[str, Levels],
    block: int,
) -> list[tuple[str, Trial]]:
    out = []
    for position, name in enumerate(ORDER):
        for cell in ctx.spec.cells:
            trial = _trial(
                ctx, (sides[name], dbs[name]), cell, levels[cell.label], Slot(block, position)
            )
            out.append((cell.label, trial))
    return out


def _trial(ctx: Context, where: tuple[Side, SideDb], cell: Cell, lv: Levels, slot: Slot) -> Trial:
    (side, template), tag, block, position = where, slot.tag, slot.block, slot.position
    label = f"{side.name}:{cell.label}"
    ctx.progress.unit_started()
    try:
        db = template.fresh_copy()
        with _as_side(ctx, side, db), ExitStack() as stack:
            cell_stack = start_cell_stack(ctx, stack, cell, db.cluster, label)  # fresh, data reset
            load = ctx.spec.load
            above = replace(
                ctx.spec, load=replace(load, warmup_s=max(load.warmup_s, ABOVE_KNEE_WARMUP_S))
            )
            low, high = (
                _trial_step(ctx, ctx.spec if users == lv.low else above, cell_stack, users,
                            where=(label, tag), repeat=block * 4 + position + 1)
                for users in (lv.low, lv.high)
            )  # fmt: skip
    finally:
        ctx.progress.unit_finished()
    for result in (low, high):
        ctx.rec.add_step(result.row, result.failures, result.resources)
    trial = _trial_from(side.name, block, position, low, high)
    ctx.say(f"[{label}] {tag}: " + ", ".join(f"{k} {v:.2f}" for k, v in trial.values.items())
            + (f" (INVALID {trial.invalid_reason})" if trial.invalid_reason else ""))  # fmt: skip
    return trial


def _trial_step(
    ctx: Context,
    spec: RunSpec,
    cell_stack: measure.CellStack,
    users: int,
    *,
    where: tuple[str, str],
    repeat: int,
) -> measure.StepResult:
    """One of a trial's two steps; `where` is the trial's (label, slot tag)."""
    label, tag = where
    ctx.progress.step_started(users)
    result = measure.measure_step(
        spec,
        cell_stack,
        users=users,
        repeat=repeat,
        gen_processes=1,
        step_dir=ctx.run_dir / "raw" / label / tag / f"u{users}",
        locust_log=ctx.run_dir / "logs" / f"locust-{label}-{tag}-u{users}.log",
    )
    ctx.progress.step_finished()
    return result


def _trial_from(
    side: str, block: int, position: int, low: measure.StepResult, high: measure.StepResult
) -> Trial:
    row = low.row
    app_cpu = next((r.cpu_pct for r in low.resources if r.component == "app"), math.nan)
    values = {
        "latency_p50_ms": row.p50_ms,
        "latency_p95_ms": row.p95_ms,
        # CPU % of one core over the window / requests per second = CPU ms per request.
        "cpu_ms_per_req": app_cpu * 10 / row.rps if row.rps > 0 else math.nan,
        "plateau_rps": high.row.ok_rps,
    }
    # Each step vouches only for its own metrics: a plateau step the generator could not hold
    # must not throw away that trial's sub-knee latency and CPU, nor the other way round.
    reasons = []
    for which, result, metrics in (("sub-knee", low, SUB_KNEE), ("above-knee", high, ABOVE_KNEE)):
        if result.row.status != "ok" or not result.row.valid:
            reasons.append(f"{which} load: {result.row.invalid_reason or result.row.status}")
            values.update(dict.fromkeys(metrics, math.nan))
    http_5xx = sum(f.count for f in low.failures if f.kind.startswith("HTTP 5"))
    valid = len(reasons) < 2
    return Trial(side, block, position, values, valid, "; ".join(reasons), row.fail_pct, http_5xx)


def _judge(
    cells: tuple[Cell, ...], trials: list[tuple[str, Trial]], thresholds: GateThresholds
) -> list[MetricResult]:
    return [
        result
        for cell in cells
        for result in judge_server(
            cell.label, [t for c, t in trials if c == cell.label], thresholds
        )
    ]
