"""The gate's JUnit XML and Markdown summary (golden files), and `compare` verdicts for two
independent runs.

Set GATEWAYBENCH_UPDATE_GOLDEN=1 to rewrite the golden files after an intended change.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import pytest

from gatewaybench.gate.compare import compare_runs_verdicts
from gatewaybench.gate.outputs import (
    GateReport,
    junit_xml,
    markdown_summary,
    verdict_table,
    write_outputs,
)
from gatewaybench.gate.sides import PIN_FILES, same_pins
from gatewaybench.gate.verdict import (
    GateThresholds,
    MetricResult,
    Trial,
    Verdict,
    guard_result,
    judge_metric,
)
from tests.conftest import REPO, check_golden


def trials(
    ratios: Sequence[float], metric: str, base: Sequence[float] = (), level: float = 100.0
) -> list[Trial]:
    """Two pairs per block; `base` optionally gives each block's A2 relative to its A1."""
    out = []
    for i, ratio in enumerate(ratios):
        block, second = divmod(i, 2)
        a = level * (base[block] if second and base else 1.0)
        out += [
            Trial("base", block, 3 if second else 0, {metric: a}),
            Trial("cand", block, 2 if second else 1, {metric: level * ratio}),
        ]
    return out


def sample_results() -> list[MetricResult]:
    """Every verdict once, with text that needs escaping in XML and in Markdown."""
    regress = [1.15, 1.18, 1.12, 1.16, 1.14, 1.2, 1.13, 1.17]
    invalid = trials([1.0] * 8, "latency_p50_ms")
    for i in (1, 4, 6):
        t = invalid[i]
        reason = 'Little\'s law off: <L> & "λ·W" | 25 %'
        invalid[i] = Trial(t.side, t.block, t.position, t.values, False, reason)
    guard_trials = [*invalid, Trial("cand", 9, 1, {}, fail_pct=2.5, http_5xx=4)]
    return [
        judge_metric("uvicorn", trials(regress, "latency_p50_ms"), "latency_p50_ms"),
        judge_metric(
            "uvicorn",
            trials([1.07, 1.06, 1.08, 1.07, 1.09, 1.06, 1.07, 1.08], "latency_p95_ms"),
            "latency_p95_ms",
        ),
        judge_metric("uvicorn", trials([0.85, 0.86, 0.88] * 3, "cpu_ms_per_req"), "cpu_ms_per_req"),
        judge_metric("uvicorn", trials([1.0, 1.01, 0.99, 1.0] * 2, "plateau_rps"), "plateau_rps"),
        guard_result("uvicorn", guard_trials),
        judge_metric("gunicorn", invalid, "latency_p50_ms"),
        judge_metric(
            "gunicorn",
            trials([1.2] * 8, "plateau_rps", base=[1.3, 0.8, 1.2, 1.0]),
            "plateau_rps",
        ),
        guard_result("gunicorn", trials([1.0] * 8, "latency_p50_ms")),
    ]


def test_sample_covers_every_verdict() -> None:
    verdicts = [r.verdict for r in sample_results()]
    assert verdicts == [
        Verdict.REGRESSION, Verdict.WARN, Verdict.BETTER, Verdict.NO_CHANGE, Verdict.REGRESSION,
        Verdict.INCONCLUSIVE, Verdict.INCONCLUSIVE, Verdict.NO_CHANGE,
    ]  # fmt: skip


def test_outputs_match_golden() -> None:
    results = sample_results()
    check_golden("gate.junit.xml", junit_xml(results, duration_s=754.25))
    check_golden("gate.summary.md", markdown_summary(results, title="Gate: main vs PR 42"))


def test_junit_structure_and_escaping() -> None:
    results = sample_results()
    text = junit_xml(results, suite_name="ci.gate", duration_s=1.5)
    assert text == junit_xml(results, suite_name="ci.gate", duration_s=1.5)
    assert "timestamp" not in text
    root = ET.fromstring(text)
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("name"), suite.get("tests"), suite.get("time")) == ("ci.gate", "8", "1.500")
    assert (suite.get("failures"), suite.get("errors")) == ("2", "2")
    cases = suite.findall("testcase")
    assert [(c.get("classname"), c.get("name")) for c in cases][:2] == [
        ("uvicorn", "latency_p50_ms"),
        ("uvicorn", "latency_p95_ms"),
    ]
    failure = cases[0].find("failure")
    assert failure is not None and failure.get("message") == results[0].message
    warn_out = cases[1].find("system-out")
    assert warn_out is not None and warn_out.text is not None
    assert warn_out.text.startswith("warn: ") and "7.0 % worse" in warn_out.text
    error = cases[5].find("error")
    assert error is not None and '<L> & "λ·W" | 25 %' in (error.get("message") or "")
    stamped = junit_xml(results[:1], timestamp="2026-11-21T03:52:39Z")
    assert 'timestamp="2026-11-21T03:52:39Z"' in stamped


def test_junit_removes_characters_xml_cannot_hold() -> None:
    nan = math.nan
    bad = MetricResult("s", "m", Verdict.INCONCLUSIVE, nan, nan, nan, nan, 0, nan, "a\x00b\x1bc")
    error = ET.fromstring(junit_xml([bad])).find("testsuite/testcase/error")
    assert error is not None and error.get("message") == "a\ufffdb\ufffdc"


def test_markdown_headline_follows_the_exit_code() -> None:
    results = sample_results()
    assert "**❌ regression**" in markdown_summary(results)
    inconclusive = [r for r in results if r.verdict != Verdict.REGRESSION]
    assert "**⚠️ inconclusive**" in markdown_summary(inconclusive)
    passing = [r for r in inconclusive if r.verdict != Verdict.INCONCLUSIVE]
    summary = markdown_summary(passing, count_label="repeats")
    assert "**✅ no regression** (1 warn, 1 better, 2 no change)" in summary
    assert "| p | repeats | noise |" in summary
    assert "no results" in markdown_summary([])


def test_markdown_escapes_pipes() -> None:
    summary = markdown_summary(sample_results())
    line = next(x for x in summary.splitlines() if x.startswith("- **gunicorn latency_p50_ms**"))
    assert '"λ·W" \\| 25 %' in line


def _run(**metrics: list[float]) -> dict[str, dict[str, list[float]]]:
    return {"uvicorn": metrics}


def test_compare_with_repeats_finds_a_regression() -> None:
    base = _run(latency_p95_ms=[100.0, 101.0, 99.0], plateau_rps=[1000.0, 1010.0, 990.0])
    cand = _run(latency_p95_ms=[130.0, 131.0, 129.0], plateau_rps=[1200.0, 1190.0, 1210.0])
    outcome = compare_runs_verdicts(base, cand)
    latency, rps = outcome.results
    assert latency.verdict == Verdict.REGRESSION and latency.ci_low_pct > 10
    assert latency.median_change_pct == pytest.approx(30.0, abs=0.1)
    assert latency.message.startswith("worse: 30.0 % worse, 95 % CI +")
    assert "(Welch on logs, 3 vs 3 repeats)" in latency.message
    assert rps.verdict == Verdict.BETTER and rps.message.startswith("better: ")
    assert rps.ci_high_pct < -5 and rps.pairs == 3
    assert outcome.exit_code == 1


def test_only_paired_results_get_the_bound_column() -> None:
    """The gate decides 'no change' on the bound, so its table shows it; compare has no pairs
    and no bound, so an all-n/a column would only mislead."""
    gate_md = markdown_summary(sample_results())
    assert "| 95 % bound |" in gate_md and "needs it below the 10 % threshold" in gate_md
    base = _run(latency_p95_ms=[100.0, 101.0, 99.0], plateau_rps=[1000.0, 1010.0, 990.0])
    cand = _run(latency_p95_ms=[130.0, 131.0, 129.0], plateau_rps=[1200.0, 1190.0, 1210.0])
    results = compare_runs_verdicts(base, cand).results
    assert all(math.isnan(r.bound_pct) for r in results)
    assert "bound" not in markdown_summary(results) + junit_xml(results)
    gate_html = verdict_table(sample_results())
    compare_html = verdict_table(results)
    assert "95 % bound" in gate_html.header and "95 % bound" not in compare_html.header
    assert all(len(row) == len(gate_html.header) for row in gate_html.rows)


def test_compare_marks() -> None:
    base = _run(
        latency_p50_ms=[100.0, 100.5, 99.5],
        latency_p95_ms=[100.0, 100.5, 99.5],
        cpu_ms_per_req=[100.0, 140.0, 70.0],
        plateau_rps=[1000.0, 1005.0, 995.0],
    )
    cand = _run(
        latency_p50_ms=[101.0, 100.5, 101.5],  # +1 %, tight: equivalence shown
        latency_p95_ms=[107.0, 107.5, 106.5],  # +7 %, tight: worse, but below regress_pct
        cpu_ms_per_req=[112.0, 160.0, 80.0],  # +13 %, wide: cannot tell
        plateau_rps=[1000.0, 1040.0, 960.0],  # 0 %, wider than the warn band
    )
    outcome = compare_runs_verdicts(base, cand)
    marks = [r.message.split(":")[0] for r in outcome.results]
    assert marks == ["no change", "worse", "not significant", "not significant"]
    verdicts = [r.verdict for r in outcome.results]
    assert verdicts == [Verdict.NO_CHANGE, Verdict.WARN, Verdict.INCONCLUSIVE, Verdict.NO_CHANGE]
    assert outcome.exit_code == 3


def test_compare_single_repeats_cannot_be_significant() -> None:
    small = compare_runs_verdicts(_run(latency_p50_ms=[100.0]), _run(latency_p50_ms=[103.0]))
    assert small.exit_code == 0 and small.results[0].verdict == Verdict.NO_CHANGE
    assert small.results[0].message == "not significant: 3.0 % worse; 1 vs 1 repeats, no interval"
    big = compare_runs_verdicts(_run(latency_p50_ms=[100.0]), _run(latency_p50_ms=[125.0, 124.0]))
    result = big.results[0]
    assert big.exit_code == 3 and result.verdict == Verdict.INCONCLUSIVE
    assert "beyond the 10 % threshold" in result.message and "not significant" in result.message
    assert math.isnan(result.ci_low_pct)
    better = compare_runs_verdicts(_run(plateau_rps=[1000.0]), _run(plateau_rps=[1500.0]))
    assert better.exit_code == 0 and "better" in better.results[0].message


def test_compare_missing_data_is_inconclusive() -> None:
    base = {"uvicorn": {"latency_p50_ms": [100.0, 101.0]}, "daphne": {"latency_p50_ms": [90.0]}}
    cand = {"uvicorn": {"latency_p50_ms": [math.nan, 0.0]}, "hypercorn": {"plateau_rps": [5.0]}}
    outcome = compare_runs_verdicts(base, cand)
    assert [(r.server, r.metric) for r in outcome.results] == [
        ("uvicorn", "latency_p50_ms"),
        ("daphne", "latency_p50_ms"),
        ("hypercorn", "plateau_rps"),
    ]
    assert {r.verdict for r in outcome.results} == {Verdict.INCONCLUSIVE}
    assert (
        outcome.results[0].message == "missing: no latency_p50_ms for uvicorn in the candidate run"
    )
    assert "in the base run" in outcome.results[2].message
    assert outcome.exit_code == 3


def test_compare_thresholds_and_writers() -> None:
    base = _run(latency_p50_ms=[100.0, 101.0, 99.0])
    cand = _run(latency_p50_ms=[107.0, 108.0, 106.0])
    strict = compare_runs_verdicts(base, cand, GateThresholds(regress_pct=3.0, warn_pct=1.0))
    assert strict.exit_code == 1
    summary = markdown_summary(list(strict.results), title="compare", count_label="repeats")
    assert "| uvicorn | latency_p50_ms | +7.0 % (+" in summary and "| 3 | n/a |" in summary
    assert ET.fromstring(junit_xml(strict.results)).find("testsuite/testcase/failure") is not None


def test_a_git_side_reuses_this_environment_only_for_the_same_pins(tmp_path: Path) -> None:
    """A ref whose dependencies and psycopg 3 pins are this checkout's runs on this environment;
    any other pin (or a missing pin file) gets its own `make install`."""
    root = tmp_path / "ref"
    (root / "envs").mkdir(parents=True)
    for rel in PIN_FILES:
        (root / rel).write_text((REPO / rel).read_text())
    assert same_pins(root)
    pyproject = root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("# the tests", "# a comment"))
    assert same_pins(root)  # a comment or a dev extra is not a runtime pin
    pyproject.write_text(pyproject.read_text().replace('"django==', '"django>='))
    assert not same_pins(root)
    (root / "envs" / "psycopg3.txt").unlink()
    assert not same_pins(root)


def test_the_step_summary_is_the_file_given_never_one_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI reads GITHUB_STEP_SUMMARY and hands the path down; below it, nothing reads it."""
    elsewhere = tmp_path / "from-the-environment.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(elsewhere))
    gate_dir = tmp_path / "gate"
    gate_dir.mkdir()
    side = {"given": ".", "kind": "tree", "commit": "", "sample_app": "s", "python": "p"}
    manifest = {"status": "complete", "sides": {"base": side, "cand": side}}
    (gate_dir / "manifest.json").write_text(json.dumps(manifest))
    summary = tmp_path / "step-summary.md"
    summary.write_text("earlier step\n")
    results = sample_results()
    write_outputs(gate_dir, results, [], 12.0, GateReport(summary))
    text = summary.read_text()
    assert text.startswith("earlier step\n")  # appended to, as CI's summary file expects
    assert text.endswith((gate_dir / "summary.md").read_text() + "\n")
    write_outputs(gate_dir, results, [], 12.0)
    assert not elsewhere.exists()
