"""Two short real gates. One, shared by the first tests below: a base side that is a git ref
(HEAD, checked out in its own worktree, removed afterwards; it pins this checkout's packages, so
its sample app runs on this environment without an install) against a candidate with known extra
CPU work, one sequential A B B A block at fixed loads (no calibration) — too few pairs for a
verdict, so exit 3 and every output. The other: two duet trials of the same candidate against
this checkout, both sides at the same time on separate cores."""

from __future__ import annotations

import csv
import json
import math
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO, assert_nothing_left
from tests.harness import Finished, run, run_dir_of

pytestmark = pytest.mark.e2e

SLOWER = REPO / "tests" / "fixtures" / "gate" / "slower.toml"


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()


@dataclass(frozen=True)
class Gate:
    out: Finished
    gate_dir: Path
    head: str  # the commit HEAD named when the gate ran
    worktrees_before: str  # `git worktree list` before the gate


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> Gate:
    """The gate's one run: every test reads it."""
    reports = tmp_path_factory.mktemp("gate")
    head = _git("rev-parse", "HEAD")
    worktrees_before = _git("worktree", "list", "--porcelain")
    out = run(
        "gate", "--base", "HEAD", "--cand", str(SLOWER), "--design", "sequential",
        "--blocks", "1", "--no-rerun", "--users", "20,40", "--window", "5", "--warmup", "1",
        "--ramp", "1", "--workers", "2", reports=reports, timeout_s=1500,
    )  # fmt: skip
    assert out.code == 3, out.stdout[-2000:] + out.stderr[-3000:]  # 2 pairs: no verdict
    gate_dir = run_dir_of(out.stdout)
    assert_nothing_left(str(gate_dir))
    return Gate(out, gate_dir, head, worktrees_before)


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_a_git_ref_side_is_checked_out_in_its_own_worktree_and_measured(gate: Gate) -> None:
    assert f"{gate.head[:12]} pins this checkout's packages" in gate.out.stderr
    base = json.loads((gate.gate_dir / "manifest.json").read_text())["sides"]["base"]
    assert (base["kind"], base["commit"], base["given"]) == ("git", gate.head, "HEAD")
    assert Path(base["python"]) == Path(sys.executable)  # the same pins: no second install
    worktree = Path(base["sample_app"]).parent
    assert worktree.name == gate.head[:12]
    assert worktree != REPO and not worktree.exists(), "the worktree is removed at the end"
    assert not worktree.parent.exists()
    assert _git("worktree", "list", "--porcelain") == gate.worktrees_before

    steps = _csv(gate.gate_dir / "steps.csv")
    assert len(steps) == 8  # two loads per trial
    for step in steps:  # the worktree's app answered the base side's steps
        assert step["status"] == "ok" and int(step["requests"]) > 0, step
        assert step["integrity"] in ("exact", "consistent"), step


def test_a_tiny_gate_runs_abba_trials_and_writes_every_output(gate: Gate) -> None:
    gate_dir = gate.gate_dir
    assert "inconclusive" in gate.out.stdout and "more blocks" not in gate.out.stderr
    trials = _csv(gate_dir / "trials.csv")
    assert [(t["side"], t["position"]) for t in trials] == [
        ("base", "0"),
        ("cand", "1"),
        ("cand", "2"),
        ("base", "3"),
    ]

    def cpu(side: str) -> list[float]:  # a sub-knee step Little's law rejected reads NaN
        values = [float(t["cpu_ms_per_req"]) for t in trials if t["side"] == side]
        return [v for v in values if not math.isnan(v)]

    # 4 ms of CPU work per request on the candidate: plainly visible on the average.
    base_cpu, cand_cpu = cpu("base"), cpu("cand")
    assert base_cpu and cand_cpu, trials
    assert statistics.fmean(cand_cpu) > statistics.fmean(base_cpu) + 2, (base_cpu, cand_cpu)

    junit = (gate_dir / "gate.junit.xml").read_text()
    assert junit.count("<testcase") == 5 and 'name="cpu_ms_per_req"' in junit
    assert junit.count("<skipped") == 2  # the latencies do not decide: "not judged" here
    assert "## gatewaybench gate" in (gate_dir / "summary.md").read_text()
    assert "<h2>Trials</h2>" in (gate_dir / "gate.html").read_text()
    manifest = json.loads((gate_dir / "manifest.json").read_text())
    assert manifest["sides"]["cand"]["django"]["cpu_work_ms"] == 4.0
    assert manifest["sides"]["base"]["django"]["cpu_work_ms"] == 0.0
    servers = [r["server"] for r in _csv(gate_dir / "steps.csv")]
    assert servers.count("base:gunicorn") == 4 and servers.count("cand:gunicorn") == 4


def test_gate_refuses_a_side_it_cannot_resolve(tmp_path: Path) -> None:
    out = run("gate", "--base", ".", "--cand", "no-such-ref-anywhere", reports=tmp_path / "r",
              timeout_s=60)  # fmt: skip
    assert out.code == 2
    assert "is not '.', a .toml file, env:PATH or a git ref" in out.stderr
    assert not (tmp_path / "r").exists()


def test_a_pinned_duet_runs_both_sides_at_the_same_time_on_separate_cores(
    tmp_path: Path,
) -> None:
    out = run(
        "gate", "--base", ".", "--cand", str(SLOWER), "--design", "duet", "--pin", "app",
        "--pairs", "2",
        "--no-rerun", "--users", "10,20", "--window", "5", "--warmup", "1", "--ramp", "1",
        "--workers", "2", reports=tmp_path / "r", timeout_s=600,
    )  # fmt: skip
    assert out.code == 3, out.stdout[-2000:] + out.stderr[-3000:]  # 2 pairs: no verdict
    gate_dir = run_dir_of(out.stdout)
    assert_nothing_left(str(gate_dir))
    trials = _csv(gate_dir / "trials.csv")
    assert [(t["block"], t["side"]) for t in trials] == [
        ("0", "base"), ("0", "cand"), ("1", "base"), ("1", "cand"),
    ]  # fmt: skip
    cores = [(trials[i]["app_cpus"], trials[i + 1]["app_cpus"]) for i in (0, 2)]
    for base_core, cand_core in cores:  # read back from the kernel after each trial
        assert base_core.isdigit() and cand_core.isdigit() and base_core != cand_core, cores
    assert cores[0] == cores[1][::-1], "the cores are swapped from one trial to the next"
    # Trials 0 and 1 start the base first (trials 2 and 3 would start the candidate first).
    assert [t["started_first"] for t in trials] == ["True", "False", "True", "False"]

    steps = _csv(gate_dir / "steps.csv")
    assert len(steps) == 8 and all(s["status"] == "ok" for s in steps), steps
    by_side: dict[str, list[int]] = {}
    for step in steps:
        by_side.setdefault(step["server"], []).append(int(step["window_start"]))
    # Both sides' windows of each step start together: measured at the same time.
    for base_start, cand_start in zip(
        by_side["base:gunicorn"], by_side["cand:gunicorn"], strict=True
    ):
        assert abs(base_start - cand_start) <= 1, by_side

    cpu = {t["side"]: [] for t in trials}
    for t in trials:
        if not math.isnan(float(t["cpu_ms_per_req"])):
            cpu[t["side"]].append(float(t["cpu_ms_per_req"]))
    assert cpu["base"] and cpu["cand"], trials
    assert statistics.fmean(cpu["cand"]) > statistics.fmean(cpu["base"]) + 2, cpu
    gate = json.loads((gate_dir / "manifest.json").read_text())["gate"]
    assert (gate["design"], gate["pairs"], gate["pinning"]) == ("duet", 2, "app")
