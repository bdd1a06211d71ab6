"""`--users auto` and `--rate auto` on a live stack: probe every cell, then choose the steps
(the search and the step rules themselves are pure, in gatewaybench.load.knee_search)."""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import asdict, replace

from gatewaybench.analysis.step import level_tag
from gatewaybench.backend import Database
from gatewaybench.cells import start_cell_stack
from gatewaybench.context import Context, RunDatabase
from gatewaybench.load import knee_search, measure
from gatewaybench.load.locust_runner import OpenStep
from gatewaybench.matrix import Cell


def calibrate_steps(ctx: Context, db: RunDatabase) -> None:
    """Probe every cell (short steps) and choose steps bracketing the knees: shared by every
    cell in a run without waits; per cell, wait by wait, in a run with upstream waits (each
    cell's probes start where its variant's knee was at the previous wait: waiting more does
    not raise a knee much, so that search is short)."""
    knees: dict[Cell, int] = {}
    for cell in ctx.spec.cells:
        start = _previous_knee(knees, cell) or knee_search.PROBE_START
        probes = probe_cell(ctx, cell, db.ensure_alive(), start=start)
        knees[cell] = knee_search.knee(probes)
        ctx.rec.manifest.setdefault("calibration", {})[cell.label] = {
            "knee_users": knees[cell],
            "probes": [asdict(p) for p in probes],
        }
        ctx.rec.save_manifest()
        ctx.say(f"[{cell.label}] calibrated: held up to {knees[cell]} users")
    if ctx.spec.waits == (None,):
        _record_steps(ctx, knee_search.choose_steps(list(knees.values()), ctx.spec.load.auto_steps))
        return
    for cell, knee in knees.items():
        ctx.steps[cell.label] = knee_search.bracket_steps(knee, ctx.spec.load.auto_steps)
        ctx.bracketed.add(cell.label)
        ctx.say(f"[{cell.label}] steps from its knee: {', '.join(map(str, ctx.steps[cell.label]))}")
    ctx.rec.manifest["resolved"]["users_by_cell"] = {k: list(v) for k, v in ctx.steps.items()}
    ctx.rec.save_manifest()


def _previous_knee(knees: dict[Cell, int], cell: Cell) -> int:
    """The knee of the same variant at the last wait probed before this cell's (0: none)."""
    before = [k for c, k in knees.items() if c.variant == cell.variant]
    return before[-1] if before else 0


def _record_steps(ctx: Context, steps: tuple[int, ...]) -> None:
    ctx.steps = dict.fromkeys(ctx.steps, steps)
    ctx.rec.manifest["resolved"]["users"] = list(steps)
    ctx.rec.save_manifest()
    ctx.say(f"gatewaybench: calibrated steps: {', '.join(map(str, steps))} users")


def calibrate_rates(ctx: Context, db: RunDatabase) -> None:
    """`--rate auto`: each cell's open-model knee (the highest arrival rate its short probes
    held, doubling from PROBE_START arrivals/s), then rate steps bracketing it, per cell (from
    K to 2K a factor sqrt(2) apart, like the per-cell user steps)."""
    for cell in ctx.spec.cells:
        probes = probe_cell(ctx, cell, db.ensure_alive(), open_model=True)
        knee = knee_search.knee(probes)
        ctx.rates[cell.label] = tuple(
            float(r) for r in knee_search.bracket_steps(knee, ctx.spec.load.auto_steps)
        )
        ctx.rec.manifest.setdefault("calibration_open", {})[cell.label] = {
            "knee_rate": knee,
            "probes": [asdict(p) for p in probes],
        }
        ctx.rec.manifest["resolved"].setdefault("rates_by_cell", {})[cell.label] = list(
            ctx.rates[cell.label]
        )
        ctx.rec.save_manifest()
        rates = ", ".join(f"{r:g}" for r in ctx.rates[cell.label])
        ctx.say(f"[{cell.label}] calibrated: held up to {knee} arrivals/s; rates {rates}")


def probe_cell(
    ctx: Context,
    cell: Cell,
    db: Database,
    label: str = "",
    start: int = knee_search.PROBE_START,
    *,
    open_model: bool = False,
) -> list[knee_search.Probe]:
    """Short steps on a fresh stack, from `start` users (or, for the open model, arrivals/s),
    until the knee is found."""
    probe_spec = replace(ctx.spec, load=knee_search.probe_load(ctx.spec.load))
    probes: list[knee_search.Probe] = []
    raw = ctx.run_dir / "raw" / "calibration" / cell.label
    with ExitStack() as stack:
        cell_stack = start_cell_stack(ctx, stack, cell, db, label)
        while (level := knee_search.next_level(probes, start)) is not None:
            arrivals = _open_step(ctx, level) if open_model else None
            tag = level_tag(level, float(level)) if open_model else level_tag(level)
            result = measure.measure_step(
                probe_spec,
                cell_stack,
                users=0 if open_model else level,
                repeat=1,
                gen_processes=ctx.spec.load.processes or 1,
                step_dir=raw / tag,
                locust_log=ctx.run_dir / "logs" / f"locust-calibrate-{cell.label}-{tag}.log",
                open_step=arrivals,
            )
            probes.append(knee_search.judge(result.row, ctx.spec.thresholds))
            if cell_stack.components.dead() is not None:
                break  # the cell's step will fail with the cause
    return probes


def _open_step(ctx: Context, rate: int) -> OpenStep:
    load = ctx.spec.load
    return OpenStep(float(rate), load.max_inflight, load.arrival_seed)
