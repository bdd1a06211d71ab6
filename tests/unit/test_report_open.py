"""Reports of a run with open-model steps: the fixture run (closed: gunicorn and uvicorn at 10
and 40 users) with open-model steps added (gunicorn, which then ran both models, and daphne,
which ran only the open model), their resources and failures rows included."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from gatewaybench.report import figures
from gatewaybench.report.data import load_run
from gatewaybench.report.multirun import render_multirun
from gatewaybench.report.render import open_seed_tables, render_run, seed_tables
from tests.unit.test_report import FIXTURE

LATE = "load generator late: dispatch lag p99 14.0 ms > 10 ms"
DROPS = "gunicorn at 40 arrivals/s: 2 of 200 arrivals dropped (1.0 %) at --max-inflight"


def _open_step(server: str, rate: float, arrivals: int, **kw: Any) -> dict[str, Any]:
    """An open-model step row: 5 s window, every arrival sent but the dropped ones."""
    dropped = kw.pop("dropped", 0)
    requests = arrivals - dropped
    row = {
        "server": server, "interface": "wsgi", "repeat": 1, "model": "open", "users": 0,
        "rate": rate, "status": "ok", "window_s": 5, "requests": requests, "failures": 0,
        "fail_pct": 0.0, "slow_pct": 0.0, "rps": requests / 5, "ok_rps": requests / 5,
        "mean_ms": 20.0, "p50_ms": 18.0, "p95_ms": 40.0, "p99_ms": 60.0, "arrivals": arrivals,
        "dropped": dropped, "drop_pct": 100 * dropped / arrivals, "intended_mean_ms": 25.0,
        "intended_p50_ms": 20.0, "intended_p95_ms": 90.0, "intended_p99_ms": 150.0,
        "lag_p99_ms": 1.0, "lag_max_ms": 3.0, "integrity": "exact", "gen_cpu_pct": 10.0,
        "xcheck": "agrees", "pg_clients_peak": 1, "valid": True, "invalid_reason": math.nan,
    }  # fmt: skip
    return row | kw


OPEN_STEPS = [
    _open_step("gunicorn", 20, 100),
    _open_step("gunicorn", 40, 200, dropped=2, intended_p95_ms=400.0),
    _open_step("gunicorn", 80, 400, fail_pct=3.0, failures=12, lag_p99_ms=14.0, valid=False,
               invalid_reason=LATE, intended_p95_ms=2500.0),
    _open_step("daphne", 20, 100, interface="asgi"),
    _open_step("daphne", 40, 200, interface="asgi"),
]  # fmt: skip


def _append(path: Path, rows: list[dict[str, Any]], closed: dict[str, Any]) -> None:
    """Rows added to one of the run's CSV files; `closed`: the new columns' closed values."""
    df = pd.read_csv(path).assign(**closed)
    pd.concat([df, pd.DataFrame(rows)], ignore_index=True).to_csv(path, index=False)


def make_run(run_dir: Path, open_steps: list[dict[str, Any]]) -> Path:
    shutil.copytree(FIXTURE, run_dir)
    _append(run_dir / "steps.csv", open_steps, {"model": "closed", "rate": math.nan})
    resources = [
        {"server": s["server"], "repeat": 1, "users": 0, "rate": s["rate"], "component": c,
         "cpu_pct": 900.0, "peak_rss_mb": 900.0, "peak_threads": 3, "peak_processes": 3,
         "peak_db_clients": 0}
        for s in open_steps for c in ("app", "locust", "nginx", "postgres")
    ]  # fmt: skip
    _append(run_dir / "resources.csv", resources, {"rate": math.nan})
    failures = [
        {"server": s["server"], "repeat": 1, "users": 0, "rate": s["rate"], "kind": "HTTP 502",
         "count": s["failures"], "source": "nginx", "cause": "upstream closed the connection",
         "example": "HTTP 502", "evidence": "nginx error log x12"}
        for s in open_steps if s["failures"]
    ]  # fmt: skip
    _append(run_dir / "failures.csv", failures, {"rate": math.nan})
    return run_dir


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The mixed run, rendered."""
    run_dir = make_run(tmp_path_factory.mktemp("open") / "20261206T080000Z-mixed", OPEN_STEPS)
    render_run(run_dir)
    return run_dir


def _headers(html: str) -> list[list[str]]:
    """Each table's column headings, in page order."""
    heads = re.findall(r"<thead><tr>(.*?)</tr></thead>", html)
    return [re.findall(r'<th scope="col">(.*?)</th>', h) for h in heads]


def test_open_tables_by_arrivals_and_closed_tables_by_users_only(mixed: Path) -> None:
    run = load_run(mixed)
    for table in seed_tables(run):
        assert table.header == ["server", "10", "40"]  # no "0 users" column
    tables = open_seed_tables(run)
    assert [t.caption.split(" by ")[0] for t in tables] == [
        "Failure %", "Dropped arrivals %", "Requests/sec",
        "p95 from the intended start (ms)", "p95 service (ms)",
    ]  # fmt: skip
    assert all(t.header == ["server", "20", "40", "80"] for t in tables)
    fail = {row[0].text: row[1:] for row in tables[0].rows}
    assert [c.text for c in fail["gunicorn"]] == ["0.0", "0.0", "3.0*"]
    assert fail["gunicorn"][2].css == "s2 invalid" and fail["gunicorn"][2].title == LATE
    assert [c.text for c in fail["daphne"]] == ["0.0", "0.0", "-"]  # not run at 80
    drops = {row[0].text: [c.text for c in row[1:]] for row in tables[1].rows}
    assert drops["gunicorn"][:2] == ["0.0", "1.0"] and tables[1].rows[0][2].css == ""
    assert tables[0].note.startswith("* invalid step")
    html = (mixed / "report.html").read_text()
    assert '<th scope="col">0</th>' not in html
    assert ["server", "capacity (arrivals/s)", "plateau (successful req/s)"] in _headers(html)
    summary = (mixed / "summary.md").read_text()
    assert "## Open model" in summary and "| server | 20 | 40 | 80 |" in summary
    assert "| gunicorn | 0.0 | 0.0 | 3.0* |" in summary
    assert "| gunicorn | 20 | 39.6 |" in summary and "| daphne | 40 | 40.0 |" in summary
    assert "| 0 |" not in summary and "| 0.0 | 28.0 |" in summary  # closed: as before


def test_findings_name_levels_and_drops(mixed: Path) -> None:
    summary = (mixed / "summary.md").read_text()
    assert "uvicorn held 10 users" in summary  # the closed model's, unchanged
    assert "gunicorn held 20 arrivals/s (open model)" in summary
    assert "at 40 arrivals/s 1.0 % of arrivals were dropped" in summary
    assert "daphne held 40 arrivals/s" in summary and "highest rate tested" in summary
    assert f"- {DROPS}" in summary and summary.count("arrivals dropped") == 1
    assert f"gunicorn at 80 arrivals/s is invalid: {LATE}" in summary
    html = (mixed / "report.html").read_text()
    assert f"<li>{DROPS}</li>" in html


def test_open_figures_and_the_comparison_only_for_servers_with_both_models(mixed: Path) -> None:
    html = (mixed / "report.html").read_text()
    assert html.count("<img ") == 7 + 4 + 1  # closed, open, closed vs open
    assert "Closed vs open at equal throughput" in html and "can understate" in html
    run = load_run(mixed)
    assert figures.both_models_servers(run.steps) == ["gunicorn"]
    both = figures.closed_vs_open_figure(run.steps)
    assert both is not None
    assert "gunicorn closed: p95" in both.svg and "gunicorn open: p95" in both.svg
    assert "daphne" not in both.svg and "uvicorn" not in both.svg
    keys = [f.key for f in figures.open_figures(run.of_model("open").steps)]
    assert keys == ["open_fail_pct", "open_drop_pct", "open_rps", "open_latency"]


def test_no_comparison_without_a_server_in_both_models(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run", [s for s in OPEN_STEPS if s["server"] == "daphne"])
    render_run(run_dir)
    html = (run_dir / "report.html").read_text()
    assert "Open model" in html and "Closed vs open" not in html
    assert html.count("<img ") == 7 + 4
    assert "Closed vs open" not in (run_dir / "summary.md").read_text()


def test_results_json_keeps_closed_keys_and_adds_the_open_ones(mixed: Path) -> None:
    results = json.loads((mixed / "results.json").read_text())
    assert [s["model"] for s in results["steps"]] == ["closed"] * 4
    assert [(s["server"], s["rate"]) for s in results["open_steps"]] == [
        (s["server"], s["rate"]) for s in OPEN_STEPS
    ]
    assert all(r["users"] > 0 for r in results["resources"] + results["failures"])
    assert {r["rate"] for r in results["open_resources"]} == {20, 40, 80}
    assert [(f["server"], f["rate"]) for f in results["open_failures"]] == [("gunicorn", 80)]
    assert [c["capacity"] for c in results["capacity"]] == ["10", "10"]  # as before
    assert results["open_capacity"] == [
        {"server": "gunicorn", "capacity": "20", "plateau": "39.6"},
        {"server": "daphne", "capacity": "40", "plateau": "40.0"},
    ]


def test_comparison_report_shows_closed_steps_only(mixed: Path, tmp_path: Path) -> None:
    base = tmp_path / "base"
    shutil.copytree(FIXTURE, base)
    render_multirun([base, mixed], tmp_path / "cmp")
    md = (tmp_path / "cmp" / "compare.md").read_text()
    assert md.count("| server | run | 10 | 40 |") == 3 and "daphne" not in md


def test_rebuilding_a_mixed_run_gives_identical_files(mixed: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / mixed.name
    shutil.copytree(mixed, run_dir)
    names = ("report.html", "summary.md", "results.json")
    before = {n: (run_dir / n).read_bytes() for n in names}
    render_run(run_dir)
    assert before == {n: (run_dir / n).read_bytes() for n in names}


def test_an_open_model_only_run_has_no_closed_section(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run", OPEN_STEPS)
    for name in ("steps.csv", "resources.csv", "failures.csv"):  # the closed rows removed
        df = pd.read_csv(run_dir / name)
        df[df["users"] == 0].to_csv(run_dir / name, index=False)
    render_run(run_dir)
    html = (run_dir / "report.html").read_text()
    assert 'id="capacity"' not in html and 'id="open-capacity"' in html
    assert "by server x users" not in html and '<th scope="col">0</th>' not in html
    assert html.count("<img ") == 4 + 0  # the open figures; nothing to compare with
    summary = (run_dir / "summary.md").read_text()
    assert "**Capacity**" not in summary and "gunicorn held 20 arrivals/s" in summary
