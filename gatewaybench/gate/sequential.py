"""Sequential trials: one side at a time, in blocks A B B A. Before every trial the app server and
nginx are started afresh on a fresh copy of the side's database; PostgreSQL stays up for both
sides alike. Each block gives two adjacent pairs, so slow drift cancels within a pair, and its
two base trials measure the noise."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass

from gatewaybench.cells import start_cell_stack
from gatewaybench.context import Context
from gatewaybench.gate import trials
from gatewaybench.gate.sides import Side
from gatewaybench.gate.verdict import BASE, CAND, Trial
from gatewaybench.matrix import Cell

ORDER = (BASE, CAND, CAND, BASE)  # one block; positions 0..3


@dataclass(frozen=True)
class Slot:
    """Where a trial sits: its block and its position (0..3) in A B B A."""

    block: int
    position: int

    @property
    def tag(self) -> str:
        return f"b{self.block}p{self.position}"


def run_block(
    ctx: Context,
    sides: Mapping[str, Side],
    dbs: Mapping[str, trials.SideDb],
    levels: Mapping[str, trials.Levels],
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


def _trial(
    ctx: Context, where: tuple[Side, trials.SideDb], cell: Cell, lv: trials.Levels, slot: Slot
) -> Trial:
    (side, template), tag = where, slot.tag
    label = f"{side.name}:{cell.label}"
    ctx.progress.unit_started()
    try:
        db = template.fresh_copy()
        with trials.as_side(ctx, side, db), ExitStack() as stack:
            cell_stack = start_cell_stack(ctx, stack, cell, db.cluster, label)  # fresh, data reset
            results = []
            for users, spec in ((lv.low, ctx.spec), (lv.high, trials.above_knee(ctx.spec))):
                ctx.progress.step_started(f"{users} users")
                results.append(trials.trial_step(
                    ctx, spec, cell_stack, users, where=(label, tag),
                    repeat=slot.block * 4 + slot.position + 1,
                ))  # fmt: skip
                ctx.progress.step_finished()
    finally:
        ctx.progress.unit_finished()
    low, high = results
    for result in (low, high):
        ctx.rec.add_step(result.row, result.failures, result.resources)
    trial = trials.trial_from((side.name, slot.block, slot.position), low, high)
    ctx.say(trials.describe(label, tag, trial))
    return trial
