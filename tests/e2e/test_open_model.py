"""The open model, for real: Poisson arrivals that do not wait for the server, drops at the
in-flight cap, latency from the intended start beside the service latency.

Every condition is made certain by physics: one sync worker whose every request waits 100 ms
upstream serves at most 10 requests/s, so 20 arrivals/s with at most 3 in flight must drop
about half of them; and a request's latency from its intended start is its service latency
plus how late the generator sent it, which the step records and bounds.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.harness import run_bench

pytestmark = pytest.mark.e2e

SHORT = ["--ramp", "1", "--warmup", "1", "--window", "5"]


def test_a_slow_cell_drops_arrivals_at_the_cap_and_counts_them(tmp_path: Path) -> None:
    run = run_bench(
        tmp_path, *SHORT,
        "--servers", "gunicorn", "--workers", "1", "--threads", "1", "--upstream-ms", "100",
        "--model", "open", "--rate", "20", "--max-inflight", "3",
        "--arrival", "request", "--arrival-path", "/polls/",
    )  # fmt: skip
    (row,) = run.rows
    assert (row["model"], row["users"], float(row["rate"])) == ("open", "0", 20.0)
    assert row["status"] == "ok", row
    arrivals, dropped = int(row["arrivals"]), int(row["dropped"])
    # 5 s of Poisson arrivals at 20/s: 100 expected (below 60 with probability < 1e-4)
    assert arrivals > 60, row
    # served <= 10/s (+ a request or two across the window's edges): the rest was dropped
    assert int(row["requests"]) <= 10 * 5 + 3, row
    assert dropped >= arrivals - (10 * 5 + 3 + 3), row
    assert float(row["drop_pct"]) == pytest.approx(100 * dropped / arrivals, abs=0.01)
    # at most 3 in flight, served one by one in >= 100 ms: a visitor waits up to ~300 ms
    assert float(row["p50_ms"]) >= 100 and float(row["intended_p50_ms"]) >= 100, row
    # the latency from the intended start is the service latency plus the dispatch lag
    gap = float(row["intended_mean_ms"]) - float(row["mean_ms"])
    assert -0.5 <= gap <= float(row["lag_max_ms"]) + 1, row
    assert f"{dropped} of {arrivals} arrivals dropped" in run.stderr
    assert "Dropped arrivals % by server x arrivals/s" in run.stdout
    manifest = (run.run_dir / "manifest.json").read_text()
    assert '"max_inflight": 3' in manifest and '"arrival_seed": 1' in manifest


def test_a_fast_cell_under_both_models_shows_both_latencies_alike(tmp_path: Path) -> None:
    run = run_bench(
        tmp_path, *SHORT,
        "--servers", "uvicorn", "--workers", "2",
        "--model", "closed,open", "--users", "10", "--rate", "5",
    )  # fmt: skip
    closed, opened = run.rows  # a cell's closed steps, then its open ones, on the same stack
    assert (closed["model"], closed["users"], closed["rate"]) == ("closed", "10", "")
    assert (opened["model"], opened["users"], float(opened["rate"])) == ("open", "0", 5.0)
    for row in (closed, opened):
        assert row["status"] == "ok", row
        assert row["integrity"] == "exact", row  # each arrival's vote audited like a user's
    assert closed["valid"] == "True", closed
    # Valid, unless a machine busy enough to starve the generator made it send late: that is
    # measured and marks the step, and is the only flaw an open step here may show.
    assert opened["valid"] == "True" or opened["invalid_reason"].startswith(
        "load generator late"
    ), opened
    assert int(opened["dropped"]) == 0 < int(opened["arrivals"])
    # a polls session per arrival, no think time: three requests each
    assert int(opened["requests"]) >= 2 * int(opened["arrivals"]) * 0.8, opened
    service, intended = float(opened["p50_ms"]), float(opened["intended_p50_ms"])
    # the same requests' latencies: apart only by the generator's lag, well under 5 ms at
    # the median on a generator sending 5 sessions/s
    assert 0 <= intended - service <= 5, opened
    assert math.isnan(float(opened["littles_err_pct"] or "nan"))
    assert (run.run_dir / "steps" / "uvicorn-r1-u10.json").is_file()
    assert (run.run_dir / "steps" / "uvicorn-r1-a5.json").is_file()
    assert "Open-model capacity" in run.stdout and "Failure % by server x users" in run.stdout
