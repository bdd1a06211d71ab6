"""`gatewaybench compare`: exit codes 0 / 1 / 3 / 2 and the files it writes, over real run
directories derived from the committed fixture run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from gatewaybench import cli

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "run-small"


def derived_run(tmp_path: Path, name: str, rps_factor: float, repeats: int = 3) -> Path:
    """The fixture with `repeats` repeats (small jitter) and throughput scaled by rps_factor."""
    run = tmp_path / name
    shutil.copytree(FIXTURE, run)
    steps = pd.read_csv(FIXTURE / "steps.csv")
    resources = pd.read_csv(FIXTURE / "resources.csv")
    step_copies, resource_copies = [], []
    for r in range(1, repeats + 1):
        jitter = 1 + 0.01 * (r - 2)
        s = steps.copy()
        s["repeat"] = r
        for column in ("rps", "ok_rps"):
            s[column] = s[column] * rps_factor * jitter
        for column in ("p50_ms", "p95_ms"):
            s[column] = s[column] / rps_factor * jitter
        s["valid"] = True
        step_copies.append(s)
        res = resources.copy()
        res["repeat"] = r
        resource_copies.append(res)
    pd.concat(step_copies).to_csv(run / "steps.csv", index=False)
    pd.concat(resource_copies).to_csv(run / "resources.csv", index=False)
    return run


def test_same_runs_pass_with_exit_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = derived_run(tmp_path, "base", 1.0)
    cand = derived_run(tmp_path, "cand", 1.0)
    out = tmp_path / "cmp"
    assert cli.main(["compare", str(base), str(cand), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "no regression" in text
    for name in ("compare.html", "compare.md", "verdict.md", "verdict.junit.xml"):
        assert (out / name).is_file(), name
    assert "<h2>Verdict</h2>" in (out / "compare.html").read_text()


def test_a_clear_slowdown_is_a_regression_with_exit_1(tmp_path: Path) -> None:
    base = derived_run(tmp_path, "base", 1.0)
    cand = derived_run(tmp_path, "cand", 0.7)  # 30 % fewer requests/sec, slower responses
    out = tmp_path / "cmp"
    assert cli.main(["compare", str(base), str(cand), "--out", str(out)]) == 1
    junit = (out / "verdict.junit.xml").read_text()
    assert "<failure" in junit and 'name="plateau_rps"' in junit


def test_single_repeats_cannot_show_a_big_change_so_exit_3(tmp_path: Path) -> None:
    base = derived_run(tmp_path, "base", 1.0, repeats=1)
    cand = derived_run(tmp_path, "cand", 0.7, repeats=1)
    assert cli.main(["compare", str(base), str(cand), "--out", str(tmp_path / "c")]) == 3


def test_a_malformed_run_dir_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "not-a-run").mkdir()
    code = cli.main(
        ["compare", str(FIXTURE), str(tmp_path / "not-a-run"), "--out", str(tmp_path / "c")]
    )
    assert code == 2 and "is not a run directory" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()
