"""The duet design on synthetic paired data (known effects, a host noise the pairs must cancel,
a noise too large for any answer), its core and order plan, and CPU pinning of a real process
tree."""

from __future__ import annotations

import math
import os
import random
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gatewaybench import cli
from gatewaybench.analysis.resources import ResourceRow
from gatewaybench.analysis.step import StepRow
from gatewaybench.errors import UsageError
from gatewaybench.gate import duet, trials
from gatewaybench.gate.outputs import inconclusive_policy
from gatewaybench.gate.run import check_exit_code, rerun_units
from gatewaybench.gate.verdict import (
    BASE,
    CAND,
    DESIGN_THRESHOLDS,
    Design,
    MetricResult,
    Trial,
    Verdict,
    duet_pairs,
    judge_metric,
    pair_noise_pct,
)
from gatewaybench.load.measure import StepResult
from gatewaybench.stack import affinity

DUET = DESIGN_THRESHOLDS[Design.DUET]
METRIC = "cpu_ms_per_req"


def duet_trials(
    seed: int, effect: float, *, host: float = 0.15, own: float = 0.03, pairs: int = 12
) -> list[Trial]:
    """Each trial: a host factor exp(N(0, host)) both sides share (what a duet cancels), and
    each side's own noise exp(N(0, own)); the candidate costs `effect` times the base."""
    rng = random.Random(seed)
    out = []
    for i in range(pairs):
        shared = 6.0 * math.exp(rng.gauss(0, host))
        for position, (side, factor) in enumerate(((BASE, 1.0), (CAND, effect))):
            value = shared * factor * math.exp(rng.gauss(0, own))
            out.append(Trial(side, i, position, {METRIC: value}))
    return out


def judge(trials: list[Trial], design: Design = Design.DUET) -> MetricResult:
    return judge_metric("gunicorn", trials, METRIC, DUET, design=design)


def test_a_duet_trial_is_one_pair_and_an_invalid_side_drops_it() -> None:
    trials = duet_trials(1, 1.0, pairs=3)
    pairing = duet_pairs(trials)
    assert [(b.block, c.block) for b, c in pairing.pairs] == [(0, 0), (1, 1), (2, 2)]
    assert (pairing.expected, pairing.incomplete) == (3, 0)
    b = trials[2]
    trials[2] = Trial(b.side, b.block, b.position, b.values, False, "generator saturated")
    assert len(duet_pairs(trials).pairs) == 2
    assert duet_pairs(trials[:-1]).incomplete == 1  # trial 2 lost its candidate


def test_pair_noise_is_the_median_deviation_of_the_paired_log_ratios() -> None:
    assert math.isnan(pair_noise_pct([0.1]))
    assert pair_noise_pct([0.0, 0.0, 0.0]) == 0.0
    d = [math.log(1.1), 0.0, -math.log(1.1)]  # deviations from the median 0: 9.5 %, 0, 9.5 %
    assert pair_noise_pct(d) == pytest.approx(10.0)


@pytest.mark.parametrize("seed", range(20))
def test_a_10_percent_regression_under_15_percent_host_noise_is_caught(seed: int) -> None:
    result = judge(duet_trials(seed, 1.10))
    assert result.verdict == Verdict.REGRESSION, result.message
    assert 5 < result.median_change_pct < 15 and result.pairs == 12


def test_host_noise_that_pairs_cancel_leaves_unchanged_code_passing() -> None:
    verdicts = [judge(duet_trials(seed, 1.0)).verdict for seed in range(200)]
    assert verdicts.count(Verdict.REGRESSION) <= 2  # <= 1 % false alarms
    passed = sum(v in (Verdict.NO_CHANGE, Verdict.WARN, Verdict.BETTER) for v in verdicts)
    assert passed >= 190, verdicts


def test_the_same_host_noise_between_unpaired_trials_could_not_pass() -> None:
    """What the duet cancels: pair each base with the NEXT trial's candidate (a minute apart, as
    sequential trials are) and the host noise stays in every ratio."""
    trials = duet_trials(3, 1.0)
    shifted = [
        Trial(t.side, (t.block + (t.side == CAND)) % 12, t.position, t.values) for t in trials
    ]
    assert judge(trials).verdict == Verdict.NO_CHANGE
    assert judge(shifted).verdict == Verdict.INCONCLUSIVE


@pytest.mark.parametrize("seed", range(30))
def test_a_noise_no_pairing_cancels_stays_inconclusive(seed: int) -> None:
    result = judge(duet_trials(seed, 1.0, own=0.5))
    assert result.verdict == Verdict.INCONCLUSIVE, result.message


def test_the_plan_puts_each_side_on_each_core_in_each_place_of_the_order() -> None:
    plan = [duet.DuetTrial(i, (0, 1)) for i in range(4)]
    assert [(t.core_of(BASE), t.core_of(CAND)) for t in plan] == [(0, 1), (1, 0)] * 2
    assert [t.order for t in plan] == [(BASE, CAND)] * 2 + [(CAND, BASE)] * 2
    combos = {(t.core_of(BASE), t.order[0]) for t in plan}
    assert len(combos) == 4
    assert [t.tag for t in plan[:2]] == ["d0", "d1"]


def test_the_rerun_keeps_whole_cycles_of_four() -> None:
    assert rerun_units(12, Design.DUET) == 8
    assert rerun_units(8, Design.DUET) == 4
    assert rerun_units(4, Design.SEQUENTIAL) == 2


def test_pinning_needs_two_cores_and_an_unpinned_duet_does_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(affinity, "usable_cpus", lambda: (0,))
    with pytest.raises(UsageError, match="--pin app needs two CPU cores") as exc:
        duet.duet_cores(duet.Pinning.APP)
    assert "--pin none" in exc.value.fix
    assert duet.duet_cores(duet.Pinning.NONE) == (0, 0)


def _result(verdict: Verdict) -> MetricResult:
    nan = math.nan
    return MetricResult("gunicorn", METRIC, verdict, 7.0, nan, nan, nan, 12, 3.0, "too noisy")


def test_an_inconclusive_gate_fails_the_check_unless_it_only_warns() -> None:
    inconclusive, passing = [_result(Verdict.INCONCLUSIVE)], [_result(Verdict.NO_CHANGE)]
    assert check_exit_code(inconclusive, inconclusive_fails=True) == 3
    assert check_exit_code(inconclusive, inconclusive_fails=False) == 0
    assert check_exit_code([_result(Verdict.REGRESSION)], inconclusive_fails=False) == 1
    assert check_exit_code(passing, inconclusive_fails=True) == 0
    assert "`--on-inconclusive fail`, the default" in inconclusive_policy(passing, True)
    warned = inconclusive_policy(inconclusive, False)
    assert "this check passes" in warned and "too noisy" in warned and "Re-run" in warned
    assert "only warns" in inconclusive_policy(passing, False)


@pytest.mark.parametrize(
    ("argv", "wrong"),
    [(["--blocks", "2"], "--blocks does not apply to --design duet"),
     (["--design", "sequential", "--pairs", "4"], "--pairs does not apply to --design sequential")],
)  # fmt: skip
def test_counts_of_the_other_design_are_refused_in_one_line(
    argv: list[str], wrong: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["gate", "--base", ".", "--cand", ".", *argv], {}) == 2
    err = capsys.readouterr().err
    assert wrong in err and len(err.strip().splitlines()) == 1, err


@pytest.fixture
def tree() -> Iterator[subprocess.Popen[bytes]]:
    """A real process with a child and a thread-free grandchild: bash, its sleep."""
    proc = subprocess.Popen(["bash", "-c", "sleep 30 & wait"], start_new_session=True)
    deadline = time.monotonic() + 5
    while len(affinity.tree_pids(proc.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)  # until bash has started its child
    try:
        yield proc
    finally:
        os.killpg(proc.pid, 9)
        proc.wait()


def test_a_whole_process_tree_is_pinned_and_read_back(tree: subprocess.Popen[bytes]) -> None:
    pids = affinity.tree_pids(tree.pid)
    assert len(pids) == 2 and pids[0] == tree.pid
    for cpu in affinity.usable_cpus()[:2]:
        assert affinity.pin_tree(tree.pid, {cpu}) == 2  # two single-threaded processes
        assert affinity.tree_affinity(tree.pid) == {cpu}
        assert all(os.sched_getaffinity(pid) == {cpu} for pid in pids)


def test_a_pinned_duet_on_one_core_is_refused_before_anything_starts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(affinity, "usable_cpus", lambda: (0,))
    reports = tmp_path / "reports"
    argv = ["gate", "--base", ".", "--cand", ".", "--pin", "app", "--reports-dir", str(reports)]
    assert cli.main(argv, {"PATH": os.environ["PATH"]}) == 2
    err = capsys.readouterr().err
    assert "needs two CPU cores" in err and len(err.strip().splitlines()) == 1, err
    assert not reports.exists()


def test_a_thread_pinned_for_a_while_starts_children_there_and_gets_its_cores_back() -> None:
    before = os.sched_getaffinity(0)
    core = affinity.usable_cpus()[-1]
    with affinity.this_thread_on({core}):
        assert os.sched_getaffinity(0) == {core}
        child = subprocess.run(
            ["python3", "-c", "import os; print(sorted(os.sched_getaffinity(0)))"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert child.stdout.strip() == f"[{core}]"  # inherited from the launching thread
    assert os.sched_getaffinity(0) == before
    with affinity.this_thread_on(None):
        assert os.sched_getaffinity(0) == before


def test_pinning_is_a_duet_setting(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["gate", "--base", ".", "--cand", ".", "--design", "sequential", "--pin", "side"]
    assert cli.main(argv, {}) == 2
    err = capsys.readouterr().err
    assert "--pin applies to --design duet only" in err and len(err.strip().splitlines()) == 1


def _step(users: int, rps: float, app_cpu_pct: float, valid: bool = True) -> StepResult:
    row = StepRow("gunicorn", "wsgi", users, rps=rps, ok_rps=rps, p50_ms=20.0, p95_ms=50.0)
    row.valid, row.invalid_reason = valid, "" if valid else "Little's law off by 40 %"
    app = ResourceRow("gunicorn", 1, users, "app", app_cpu_pct, 100.0, 3, 3, 2)
    return StepResult(row, [], [app])


def test_cpu_per_request_and_the_plateau_come_from_the_above_knee_window() -> None:
    low, high = _step(20, 40.0, 24.0), _step(120, 80.0, 40.0)  # 6 ms and 5 ms per request
    trial = trials.trial_from(("base", 0, 0), low, high, "0")
    assert trial.values["cpu_ms_per_req"] == pytest.approx(5.0)
    assert trial.values["plateau_rps"] == 80.0 and trial.values["latency_p50_ms"] == 20.0
    assert trial.valid and trial.app_cpus == "0"
    spoiled = trials.trial_from(("base", 0, 0), low, _step(120, 80.0, 40.0, valid=False))
    assert math.isnan(spoiled.values["cpu_ms_per_req"])
    assert math.isnan(spoiled.values["plateau_rps"])
    assert spoiled.values["latency_p95_ms"] == 50.0  # the sub-knee step still vouches for it
    assert spoiled.valid and "above-knee load: Little's law" in spoiled.invalid_reason


def test_the_gate_page_says_how_the_trials_ran() -> None:
    from gatewaybench.gate.outputs import _design_text

    assert _design_text({"design": "duet", "pairs": 8, "pinning": "none"}) == (
        "both sides at once (8 duet trials, nothing pinned)"
    )
    assert "pinned: app" in _design_text({"design": "duet", "pairs": 2, "pinning": "app"})
    assert "pinning not recorded" in _design_text({"design": "duet", "pairs": 2})
    assert _design_text({"design": "sequential"}) == "one side at a time in A B B A blocks"
    assert _design_text({}) == "one side at a time in A B B A blocks"  # gates before designs
