"""`gatewaybench gate`: base and candidate measured in one job, then judged on pairs.

1. Both sides are resolved (a git ref is built in its own worktree) and get their own template
   database in one private PostgreSQL cluster, migrated and seeded by their own code. Every
   trial (and the calibration) runs on a fresh copy of its side's template, so no database
   state lasts a whole gate on one side only.
2. The knee of every cell is found on the base side with the calibration probes; the trials
   use a load below it (latency and server CPU per request) and one above it (the requests/sec
   plateau).
3. Trials, in one of two designs (`--design`): duet (default, gate/duet.py: both sides at once)
   or sequential (gate/sequential.py: one side at a time, A B B A).
4. gate/verdict.py judges the paired log-ratios; when there is no answer yet (only inconclusive
   results, or a deciding metric worse than the threshold but not significant), the gate runs
   half as many trials again and judges all of them together.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, TextIO

from gatewaybench import preflight
from gatewaybench.calibration import probe_cell
from gatewaybench.context import Context
from gatewaybench.errors import Interrupted, UsageError
from gatewaybench.gate import duet, sequential
from gatewaybench.gate.outputs import GateReport, write_outputs
from gatewaybench.gate.sides import Side, resolved_side
from gatewaybench.gate.trials import TRIAL_DB, Levels, SideDb, as_side
from gatewaybench.gate.verdict import (
    BASE,
    CAND,
    DEFAULT_THRESHOLDS,
    Design,
    GateThresholds,
    MetricResult,
    Trial,
    gate_exit_code,
    judge_server,
    needs_rerun,
)
from gatewaybench.load import knee_search
from gatewaybench.matrix import Cell
from gatewaybench.progress import Progress, Unit
from gatewaybench.results import provenance, stale
from gatewaybench.results.rundir import RunRecorder, create_run_dir
from gatewaybench.runner import classify_matrix
from gatewaybench.signals import interruptible
from gatewaybench.spec import RunSpec, sized_max_connections
from gatewaybench.stack import app, pollsdb, postgres
from gatewaybench.stack.local import LocalBackend, local_backend

DEFAULT_BLOCKS = 4  # sequential: 8 pairs, the fewest for p < 0.01 with one discordant to spare
# duet: one pair per trial; twice each side on each core in each place of the order
DEFAULT_PAIRS = 8
# 10-second windows: with 5 s, a closed loop past its knee (cycles of 3-5 s) failed Little's law
# in half the plateau steps, and sub-knee latency varied twice as much between identical trials.
TRIAL_LOAD: dict[str, Any] = {"ramp_s": 1.0, "warmup_s": 2.0, "window_s": 10, "stop_timeout_s": 3.0}


@dataclass(frozen=True)
class GateOptions:
    base: str
    cand: str
    flags: dict[str, Any]  # `run` flags shared by both sides (servers, workers, threads, ...)
    blocks: int = DEFAULT_BLOCKS  # sequential
    pairs: int = DEFAULT_PAIRS  # duet
    design: Design = Design.DUET
    pinning: duet.Pinning = duet.Pinning.NONE  # duet: what of each side is on its own core
    thresholds: GateThresholds = DEFAULT_THRESHOLDS
    rerun: bool = True
    step_summary: Path | None = None  # a CI job summary that summary.md is appended to
    # An inconclusive gate exits 3 (fails a CI check); False: exits 0, the reason in the summary.
    inconclusive_fails: bool = True


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
            if opts.design == Design.DUET:
                duet.duet_cores(opts.pinning)  # pinned: two cores, or one line now
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
            gate_dir,
            results,
            trials,
            rec.manifest["gate_seconds"],
            GateReport(
                opts.step_summary,
                opts.inconclusive_fails,
                opts.thresholds.regress_pct,
                opts.design,
            ),
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
        return check_exit_code(results, opts.inconclusive_fails)


def check_exit_code(results: list[MetricResult], inconclusive_fails: bool) -> int:
    """The gate's exit code for its CI check: 1 regression, 3 inconclusive unless that only
    warns (then 0, like a pass: the summary says why), 0 pass."""
    code = gate_exit_code(results)
    return 0 if code == 3 and not inconclusive_fails else code


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
            "design": str(opts.design),
            **_design_json(opts),
            "thresholds": asdict(opts.thresholds),
            "trial_load": TRIAL_LOAD,
            "trial_database": f"{TRIAL_DB}: a fresh copy of the side's template per trial"
            + (" (_base, _cand: one each, both at once)" if opts.design == Design.DUET else ""),
        },
        "resolved": {
            # on disk the budget's workers are "processes" (a manifest key, kept as it is)
            "budget": {"processes": spec.workers, "threads": spec.threads},
            "pg_max_connections": sized_max_connections(spec) * STACKS[opts.design],
            "warnings": [],
        },
        "versions": provenance.package_versions(),
        "machine": provenance.machine(),
        "git": provenance.git_info(),
    }


def _design_json(opts: GateOptions) -> dict[str, Any]:
    if opts.design == Design.DUET:
        return {"pairs": opts.pairs, "pinning": str(opts.pinning)}
    return {"blocks": opts.blocks, "order": list(sequential.ORDER)}


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
    ctx: Context, sides: dict[str, Side], opts: GateOptions, done: list[tuple[str, Trial]]
) -> list[MetricResult]:
    spec = ctx.spec
    levels = _given_levels(spec, opts) or {}
    rounds = _rounds(opts)
    _plan_progress(ctx, opts.design, rounds[0], calibrated=len(levels) == len(spec.cells))
    with _cluster(ctx, opts.design) as cluster:
        dbs = {name: _side_database(ctx, cluster, side) for name, side in sides.items()}
        with ctx.rec.phase("calibrate (base)"):
            for cell in spec.cells:
                if cell.label not in levels:
                    ctx.progress.phase(f"calibrating {cell.label} (base)")
                    levels[cell.label] = _calibrate(ctx, sides[BASE], dbs[BASE], cell, opts)
        ctx.progress.set_steps(TRIAL, len(TRIAL_STEPS))
        measure_unit = _unit_runner(ctx, sides, dbs, levels, opts)
        for round_no, units in enumerate(rounds, 1):
            if round_no > 1:
                ctx.progress.add_units(_trial_units(ctx.spec.cells, opts.design, units))
            with ctx.rec.phase(f"trials (round {round_no})"):
                for unit in units:
                    done += measure_unit(unit)
            results = _judge(spec.cells, done, opts)
            if not needs_rerun(results, opts.thresholds) or round_no == len(rounds):
                break
            ctx.say(f"gatewaybench: no answer yet (inconclusive, or worse than "
                    f"{opts.thresholds.regress_pct:g} % but not significant); running "
                    f"{len(rounds[1])} more {_UNIT_NOUN[opts.design]} and judging all of them "
                    "together")  # fmt: skip
        return results


_UNIT_NOUN = {Design.DUET: "duet trials", Design.SEQUENTIAL: "blocks"}


def _rounds(opts: GateOptions) -> list[range]:
    """The first round's units (duet trials or A B B A blocks), and the re-run's if allowed."""
    first = opts.pairs if opts.design == Design.DUET else opts.blocks
    rounds = [range(first)]
    if opts.rerun:
        rounds.append(range(first, first + rerun_units(first, opts.design)))
    return rounds


def _unit_runner(
    ctx: Context,
    sides: dict[str, Side],
    dbs: dict[str, SideDb],
    levels: dict[str, Levels],
    opts: GateOptions,
) -> Callable[[int], list[tuple[str, Trial]]]:
    """What measures one unit of the design: a duet trial of every cell, or an A B B A block."""
    pinning = opts.pinning
    if opts.design == Design.SEQUENTIAL:
        return partial(sequential.run_block, ctx, sides, dbs, levels)
    ctxs, cores = duet.side_contexts(ctx), duet.duet_cores(pinning)
    return lambda index: duet.run_duet(
        ctxs, sides, dbs, levels, duet.DuetTrial(index, cores, pinning)
    )


TRIAL = "trial"  # every trial has the same steps: one key for the progress display's plan
TRIAL_STEPS = ("below the knee", "above the knee")


def _plan_progress(ctx: Context, design: Design, units: range, *, calibrated: bool) -> None:
    """The first round's trials; their steps are counted only once the calibration (whose
    own length is unknown) is over, so there is no estimate before then."""
    load = ctx.spec.load
    ctx.progress.plan(
        _trial_units(ctx.spec.cells, design, units),
        {TRIAL: len(TRIAL_STEPS) if calibrated else None},
        load.ramp_s + load.warmup_s + load.window_s,
        noun="trial",
    )


def _trial_units(cells: tuple[Cell, ...], design: Design, units: range) -> list[Unit]:
    """In the order measured: duet trial by duet trial (both sides at once), or block by
    block, A B B A; cell by cell within each."""
    if design == Design.DUET:
        return [Unit(f"duet:{cell.label} {duet.DuetTrial(i, (0, 1)).tag}", TRIAL)
                for i in units for cell in cells]  # fmt: skip
    return [Unit(f"{name}:{cell.label} {sequential.Slot(block, position).tag}", TRIAL)
            for block in units for position, name in enumerate(sequential.ORDER)
            for cell in cells]  # fmt: skip


def rerun_units(first: int, design: Design) -> int:
    """The re-run's units: half as many again (at least two, one more pair per metric than a
    single discordant trial can spoil), so a re-run gate still fits its 15 minutes; for a duet,
    rounded up to whole cycles of four (each side on each core, in each place of the order)."""
    half = max(2, first // 2)
    return -(-half // 4) * 4 if design == Design.DUET else half


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
def _cluster(ctx: Context, design: Design) -> Iterator[postgres.Cluster]:
    connections = sized_max_connections(ctx.spec) * STACKS[design]
    settings = replace(ctx.spec.postgres, max_connections=connections)
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


# Stacks that share the machine during a trial: a duet's two each get half of the loads that
# one stack alone would get.
STACKS = {Design.DUET: 2, Design.SEQUENTIAL: 1}


def _calibrate(ctx: Context, side: Side, db: SideDb, cell: Cell, opts: GateOptions) -> Levels:
    """Half the knee below it, the first load that did not hold x1.5 above it; per stack, so a
    duet's sides get half of each."""
    db = db.fresh_copy()
    with as_side(ctx, side, db):
        probes = probe_cell(ctx, cell, db.cluster, f"calibrate-{cell.label}")
    knee = knee_search.knee(probes)
    failed_at = probes[-1].level if not probes[-1].held else 2 * probes[-1].level
    share = STACKS[opts.design]
    low = max(knee_search.MIN_USERS, knee // (2 * share))
    levels = Levels(knee, low, max(failed_at * 3 // (2 * share), 10))
    ctx.rec.manifest.setdefault("calibration", {})[cell.label] = {
        "knee_users": knee, "low_users": levels.low, "high_users": levels.high,
        "stacks_at_once": share, "probes": [asdict(p) for p in probes],
    }  # fmt: skip
    ctx.rec.save_manifest()
    each = " each, both sides at once" if share > 1 else ""
    ctx.say(f"[{cell.label}] knee {knee} users: trials at {levels.low} and {levels.high} "
            f"users{each}")  # fmt: skip
    return levels


def _judge(
    cells: tuple[Cell, ...], done: list[tuple[str, Trial]], opts: GateOptions
) -> list[MetricResult]:
    return [
        result
        for cell in cells
        for result in judge_server(
            cell.label,
            [t for c, t in done if c == cell.label],
            opts.thresholds,
            design=opts.design,
        )
    ]
