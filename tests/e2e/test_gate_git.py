"""A gate whose base side is a git ref: built in its own worktree with its own `make install`,
served from its own environment, and removed afterwards."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, assert_nothing_left

pytestmark = pytest.mark.e2e


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_a_git_ref_side_is_built_in_its_own_worktree_and_measured(tmp_path: Path) -> None:
    head = _git("rev-parse", "HEAD")
    worktrees_before = _git("worktree", "list", "--porcelain")
    argv = [
        sys.executable, "-m", "gatewaybench", "gate", "--base", "HEAD", "--cand", ".",
        "--blocks", "1", "--no-rerun", "--users", "10,20", "--window", "3", "--warmup", "1",
        "--ramp", "1", "--workers", "1", "--reports-dir", str(tmp_path),
    ]  # fmt: skip
    out = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=1500, check=False)
    assert out.returncode == 3, out.stdout[-2000:] + out.stderr[-3000:]  # 2 pairs: no verdict
    assert f"building {head[:12]}" in out.stderr
    gate_dir = Path(out.stdout.strip().splitlines()[-1])

    base = json.loads((gate_dir / "manifest.json").read_text())["sides"]["base"]
    assert (base["kind"], base["commit"], base["given"]) == ("git", head, "HEAD")
    worktree = Path(base["python"]).parents[2]  # <worktree>/.venv/bin/python
    assert base["sample_app"] == str(worktree / "sample_app")
    assert worktree != REPO and not worktree.exists(), "the worktree is removed at the end"
    assert not worktree.parent.exists()
    assert _git("worktree", "list", "--porcelain") == worktrees_before

    with (gate_dir / "trials.csv").open() as fh:
        assert [t["side"] for t in csv.DictReader(fh)] == ["base", "cand", "cand", "base"]
    with (gate_dir / "steps.csv").open() as fh:
        steps = list(csv.DictReader(fh))
    assert len(steps) == 8  # two loads per trial
    for step in steps:  # the worktree's own servers and app answered the base side's steps
        assert step["status"] == "ok" and int(step["requests"]) > 0, step
        assert step["integrity"] in ("exact", "consistent"), step
    assert_nothing_left(str(gate_dir))
