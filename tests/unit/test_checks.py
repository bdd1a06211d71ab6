"""nginx cross-check, capacity and repeats, generator autoscaling, log slices, and the tool
checks preflight and doctor share."""

from __future__ import annotations

import math
import resource
from pathlib import Path

import pandas as pd
import pytest

from gatewaybench import preflight
from gatewaybench.analysis.capacity import capacities, capacity_of, estimate
from gatewaybench.analysis.nginxlog import cross_check, parse_access
from gatewaybench.analysis.step import StepRow
from gatewaybench.errors import UsageError
from gatewaybench.load.autoscale import next_processes
from gatewaybench.stack.logs import LogMark

T0 = 1_800_000_000


def _access(n: int, ms: float, start: int = T0) -> str:
    return "\n".join(
        f'{start + i * 0.01:.3f} 200 {ms / 1000:.3f} {ms / 1000:.3f} "GET /polls/1/" 512'
        for i in range(n)
    )


def test_access_log_parsing_skips_foreign_lines() -> None:
    entries = parse_access(_access(3, 20) + "\ngarbage line\n")
    assert len(entries) == 3 and entries[0].status == 200 and entries[0].request_time_ms == 20


def test_cross_check_agrees_within_tolerance() -> None:
    entries = parse_access(_access(500, 20))
    check = cross_check(entries, T0, T0 + 10, requests=502, p50_ms=21)
    assert check.agrees, check.note
    assert check.nginx_requests == 500 and check.nginx_p50_ms == 20


def test_cross_check_allows_a_request_at_each_window_edge() -> None:
    entries = parse_access(_access(10, 20))
    assert cross_check(entries, T0, T0 + 10, requests=11, p50_ms=20).agrees
    assert cross_check(entries, T0, T0 + 10, requests=12, p50_ms=20).agrees
    check = cross_check(entries, T0, T0 + 10, requests=13, p50_ms=20)
    assert not check.agrees and "10 requests vs 13" in check.note


def test_cross_check_flags_count_and_latency_disagreement() -> None:
    entries = parse_access(_access(500, 20))
    check = cross_check(entries, T0, T0 + 10, requests=600, p50_ms=40)
    assert not check.agrees
    assert "500 requests vs 600" in check.note and "p50 20 ms vs 40 ms" in check.note


def _steps(server: str, rows: list[tuple[int, float, float, bool]], repeat: int = 1) -> list[dict]:
    return [
        {"server": server, "repeat": repeat, "users": u, "status": "ok", "fail_pct": f,
         "p95_ms": p95, "valid": v, "rps": u / 2, "ok_rps": u / 2}
        for u, f, p95, v in rows
    ]  # fmt: skip


def test_capacity_is_the_largest_step_held_from_the_bottom() -> None:
    df = pd.DataFrame(
        _steps("a", [(100, 0, 300, True), (200, 0.5, 900, True), (300, 3, 1500, True),
                     (400, 0, 500, True)])
    )  # fmt: skip
    assert capacity_of(df, 1.0, 1000) == 200  # 400 passing after 300 failed does not count
    df_invalid = pd.DataFrame(_steps("a", [(100, 0, 300, True), (200, 0, 300, False)]))
    assert capacity_of(df_invalid, 1.0, 1000) == 100  # an invalid step is not held
    assert capacity_of(pd.DataFrame(_steps("a", [(100, 5, 300, True)])), 1.0, 1000) == 0


def test_repeats_give_a_mean_and_confidence_interval() -> None:
    rows = []
    for repeat, cap_rows in enumerate(
        [[(100, 0, 300, True), (200, 0, 300, True)], [(100, 0, 300, True), (200, 5, 300, True)]],
        start=1,
    ):
        rows += _steps("a", cap_rows, repeat)
    (cap,) = capacities(pd.DataFrame(rows), 1.0, 1000)
    assert cap.capacity.mean == 150 and cap.capacity.n == 2
    assert cap.capacity.half_width == pytest.approx(12.706 * 50 * math.sqrt(2) / math.sqrt(2), 1e-4)
    assert estimate([5.0]).text() == "5"
    assert "±" in estimate([1.0, 2.0, 3.0]).text(".1f")


def test_autoscale_projects_generator_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    prev = StepRow("g", "wsgi", 100, gen_cpu_pct=50.0)
    assert next_processes(1, prev, 100) == 1  # 50 % fits one process
    assert next_processes(1, prev, 300) == 3  # 150 % projected -> 3 x 70 %
    assert next_processes(2, prev, 100) == 2  # never scales down
    assert next_processes(1, prev, 10_000) == 4  # capped at the cores
    assert next_processes(1, None, 500) == 1


def test_log_mark_reads_only_what_came_after(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("before\n")
    mark = LogMark.now([log, tmp_path / "not-yet.log"])
    with log.open("a") as fh:
        fh.write("during\n")
    (tmp_path / "not-yet.log").write_text("new file\n")
    assert mark.since(log) == "during\n"
    assert mark.since(tmp_path / "not-yet.log") == "new file\n"
    assert mark.since(tmp_path / "gone.log") == ""


def test_tool_check_names_every_missing_tool_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "locust").write_text("#!/bin/sh\n")
    (tmp_path / "locust").chmod(0o755)
    (tmp_path / "gunicorn").write_text("not executable\n")
    monkeypatch.setattr(preflight, "bin_dir", lambda: tmp_path)
    preflight.check_tools(["locust"])
    with pytest.raises(UsageError) as info:
        preflight.check_tools(["locust", "gunicorn", "uvicorn", "gunicorn"])
    assert info.value.problem == f"gunicorn, uvicorn are not installed in {tmp_path}"
    assert "make install" in info.value.fix


def test_fd_check_reads_the_limits_and_refuses_more_users_than_the_hard_one_allows() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert preflight.check_fd_limit(1) == (soft, hard)
    if hard == resource.RLIM_INFINITY:
        pytest.skip("no hard file-descriptor limit to exceed")
    with pytest.raises(UsageError, match=rf"too low for {hard} users \(needs {2 * hard + 256}\)"):
        preflight.check_fd_limit(hard)
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == (soft, hard)  # a check changes nothing
