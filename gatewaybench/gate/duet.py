"""Duet trials: the base and candidate stacks measured at the same time, so whatever the host
does meanwhile (another tenant, the clock frequency, the scheduler) hits both alike and cancels
in their ratio (Bulej et al., "Duet Benchmarking", ICPE 2020). The sequential design pairs
trials a minute apart, and on a shared 2-core runner that minute is where its noise came from.

Each trial: both sides on fresh copies of their own databases, their stacks started (the side
started first swaps every two trials), then the sub-knee step of both at once, then the
above-knee step of both at once. By default nothing is pinned: on two cores, pinning each app
server to a core of its own (as the duet paper does, with the rest of the machine elsewhere)
left each side with different company on its core and tripled the noise (see Pinning). With
`--pin`, the base takes the first core in even trials and the second in odd ones.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, replace
from enum import StrEnum
from functools import partial
from typing import TypeVar

from gatewaybench.cells import start_cell_stack
from gatewaybench.context import Context
from gatewaybench.errors import UsageError
from gatewaybench.gate import trials
from gatewaybench.gate.sides import Side
from gatewaybench.gate.verdict import BASE, CAND, Trial
from gatewaybench.load import measure
from gatewaybench.matrix import Cell
from gatewaybench.progress import Progress
from gatewaybench.spec import RunSpec
from gatewaybench.stack import affinity
from gatewaybench.stack.local import LocalBackend, LocalComponents, local_backend
from gatewaybench.stack.net import free_port

SIDES = (BASE, CAND)
T = TypeVar("T")


class Pinning(StrEnum):
    """What of each side is pinned to that side's core in a duet."""

    # Measured here (base vs base, 2 cores): the pairs' CPU per request at the plateau differed
    # by 1.3 % (SD over 24 pairs) with nothing pinned, 4.8-7.0 % with each app server on its
    # own core, 6.1 % with each whole side on its own. A pinned side shares its core with
    # whatever else the scheduler puts there, which is not what the other side's core gets;
    # floating, both sides draw on the same cores at the same moments.
    NONE = "none"  # nothing: both sides float over every core (the default)
    APP = "app"  # the app server only; nginx, the generators and PostgreSQL float
    SIDE = "side"  # the app server, its nginx (and delayed upstream) and its load generator


def duet_cores(pinning: Pinning) -> tuple[int, int]:
    """The two cores the sides are pinned to; pinning with fewer than two is a usage error."""
    cpus = affinity.usable_cpus()
    if pinning != Pinning.NONE and len(cpus) < 2:
        raise UsageError(
            f"gate --pin {pinning} needs two CPU cores, this process may use {len(cpus)}",
            "pass --pin none (the default), or run it where two cores are free",
        )
    return cpus[0], cpus[-1]


def side_contexts(ctx: Context) -> dict[str, Context]:
    """Each side on a twin of the gate's context with ports of its own (nginx, app server,
    delayed upstream), both picked alike, so no side keeps the configured ports; the base's
    twin shows the progress display, the candidate's none."""
    resolved = local_backend(ctx).resolved
    ports = _distinct_free_ports(6, {resolved.pg_port})
    quiet = Progress.create("off", sys.stderr)
    return {
        BASE: _twin(ctx, ctx.progress, ports[:3]),
        CAND: _twin(ctx, quiet, ports[3:]),
    }


def _distinct_free_ports(count: int, taken: set[int]) -> list[int]:
    """Free ports, none twice (the kernel may hand out a port again once it is closed)."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in taken and port not in ports:
            ports.append(port)
    return ports


def _twin(ctx: Context, progress: Progress, ports: list[int]) -> Context:
    resolved = local_backend(ctx).resolved
    nginx_port, app_port, upstream_port = ports
    own = replace(
        resolved,
        nginx_port=nginx_port,
        app_port=app_port,
        upstream_port=upstream_port if resolved.upstream_port else 0,
    )
    return Context(ctx.spec, LocalBackend(own), ctx.rec, progress, ctx.environ)


@dataclass(frozen=True)
class DuetTrial:
    """Where a duet trial sits: its index (a block of the verdict's) and its cores."""

    index: int
    cores: tuple[int, int]
    pinning: Pinning = Pinning.NONE

    @property
    def tag(self) -> str:
        return f"d{self.index}"

    def core_of(self, side: str) -> int:
        """Base on the first core in even trials, on the second in odd ones."""
        first = (self.index % 2 == 0) == (side == BASE)
        return self.cores[0] if first else self.cores[1]

    @property
    def order(self) -> tuple[str, str]:
        """Which side starts (stack and steps) first: swapped every two trials, so over four
        trials each side has each core and each place in the order once."""
        return SIDES if (self.index // 2) % 2 == 0 else (CAND, BASE)


def run_duet(
    ctxs: Mapping[str, Context],
    sides: Mapping[str, Side],
    dbs: Mapping[str, trials.SideDb],
    levels: Mapping[str, trials.Levels],
    duet: DuetTrial,
) -> list[tuple[str, Trial]]:
    """One duet trial of every cell: (cell label, trial), base then candidate per cell."""
    return [
        (cell.label, trial)
        for cell in ctxs[BASE].spec.cells
        for trial in _duet_trial(ctxs, sides, dbs, cell, (levels[cell.label], duet))
    ]


def _duet_trial(
    ctxs: Mapping[str, Context],
    sides: Mapping[str, Side],
    dbs: Mapping[str, trials.SideDb],
    cell: Cell,
    where: tuple[trials.Levels, DuetTrial],
) -> list[Trial]:
    """Both sides' trials, base first; their steps go to the run's records."""
    lv, duet = where
    ctx = ctxs[BASE]
    ctx.progress.unit_started()
    try:
        with ExitStack() as stack:
            stacks = {
                name: _start_side(ctxs[name], stack, (sides[name], dbs[name]), cell, duet)
                for name in duet.order
            }
            running = _Running(ctxs, {n: trials.side_spec(ctx, sides[n]) for n in SIDES}, stacks)
            steps = []
            for users, above in ((lv.low, False), (lv.high, True)):
                ctx.progress.step_started(f"{users} users")
                steps.append(_both(partial(running.step, cell, duet, users, above), duet.order))
                ctx.progress.step_finished()
            pinned = {name: _cores_text(stacks[name]) for name in SIDES}
    finally:
        ctx.progress.unit_finished()
    low, high = steps
    out = []
    for position, name in enumerate(SIDES):
        trial = trials.trial_from((name, duet.index, position), low[name], high[name], pinned[name])
        trial = replace(trial, started_first=name == duet.order[0])
        for result in (low[name], high[name]):
            ctx.rec.add_step(result.row, result.failures, result.resources)
        ctx.say(trials.describe(_label(name, cell), duet.tag, trial))
        out.append(trial)
    return out


@dataclass(frozen=True)
class _Running:
    """Both sides of one duet trial, started."""

    ctxs: Mapping[str, Context]
    specs: Mapping[str, RunSpec]
    stacks: Mapping[str, measure.CellStack]

    def step(
        self, cell: Cell, duet: DuetTrial, users: int, above: bool, side: str
    ) -> measure.StepResult:
        spec = trials.above_knee(self.specs[side]) if above else self.specs[side]
        where = (_label(side, cell), duet.tag)
        cores = {duet.core_of(side)} if duet.pinning == Pinning.SIDE else None
        with affinity.this_thread_on(cores):  # the generator it starts inherits it
            return trials.trial_step(
                self.ctxs[side], spec, self.stacks[side], users, where=where, repeat=duet.index + 1
            )


def _label(side: str, cell: Cell) -> str:
    return f"{side}:{cell.label}"


def _start_side(
    ctx: Context,
    stack: ExitStack,
    where: tuple[Side, trials.SideDb],
    cell: Cell,
    duet: DuetTrial,
) -> measure.CellStack:
    side, template = where
    db = template.fresh_copy(f"{trials.TRIAL_DB}_{side.name}")
    with trials.as_side(ctx, side, db):
        cell_stack = start_cell_stack(ctx, stack, cell, db.cluster, _label(side.name, cell))
    for pid in _pinned_pids(cell_stack, duet.pinning):
        affinity.pin_tree(pid, {duet.core_of(side.name)})
    return cell_stack


def _pinned_pids(cell_stack: measure.CellStack, pinning: Pinning) -> list[int]:
    """The process trees pinned when the stack starts (a SIDE's generator is pinned as it
    starts: it inherits its launching thread's affinity, see _Running.step)."""
    procs = _components(cell_stack).procs
    names = {Pinning.APP: ("app",), Pinning.SIDE: ("app", "nginx", "upstream")}.get(pinning, ())
    return [procs[name].pid for name in names if name in procs]


def _components(cell_stack: measure.CellStack) -> LocalComponents:
    components = cell_stack.components
    assert isinstance(components, LocalComponents), "duet trials run on the local backend"
    return components


def _app_pid(cell_stack: measure.CellStack) -> int:
    return _components(cell_stack).procs["app"].pid


def _cores_text(cell_stack: measure.CellStack) -> str:
    """Where the app server's threads were allowed to run at the end of the trial, read back
    from the kernel: what the trial's record says is observed, not intended."""
    return ",".join(map(str, sorted(affinity.tree_affinity(_app_pid(cell_stack)))))


def _both(measure_side: Callable[[str], T], order: tuple[str, str]) -> dict[str, T]:
    """Both sides' steps at once: the first side's in a thread (submitted first, it starts a
    moment earlier), the second's here. A signal stops both: each step's wait loop checks
    for it."""
    first, second = order
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gatewaybench-duet") as pool:
        early = pool.submit(measure_side, first)
        late = measure_side(second)
        # The first side's step started with the second's and lasts as long: waiting for it
        # is bounded by its own deadline (locust_runner.wait_step).
        return {first: early.result(), second: late}
