"""The recording format (loadtests/recording.py) and the step analysis over synthetic records."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import pytest

from gatewaybench.analysis.histogram import Histogram
from gatewaybench.analysis.records import read_step_records
from gatewaybench.analysis.step import StepContext, analyse_step, window_bounds
from loadtests.recording import TASK_KEY, THINK_KEY, Recorder, bucket_us

T0 = 1_800_000_000  # a whole second


def _log_spaced_ms(low_ms: float, high_ms: float, n: int) -> list[float]:
    ratio = (high_ms / low_ms) ** (1 / (n - 1))
    return [low_ms * ratio**i for i in range(n)]


# 0.1 ms .. 60 s: log-spaced (every bucket width), plus random values between.
VALUES_MS = _log_spaced_ms(0.1, 60_000, 20_000) + [
    math.exp(random.Random(7).uniform(math.log(0.1), math.log(60_000))) for _ in range(20_000)
]


def test_a_recorded_latency_is_within_its_stated_bound() -> None:
    """bucket_us's docstring: |recorded - true| <= max(true / 2048, 0.5 us)."""
    for ms in VALUES_MS:
        us = ms * 1000
        error = abs(bucket_us(ms) - us)
        assert error <= max(us / 2048, 0.5) * (1 + 1e-12), ms
        if us >= 500:  # HdrHistogram's 3 significant digits: within 0.1 %
            assert error <= us / 1000, ms


def test_buckets_are_hdrhistograms_at_3_significant_digits() -> None:
    """2048 sub-buckets per power of two: every microsecond below 2048 us is its own bucket,
    then no bucket is wider than 1/1024 of its values, and each is recorded at its midpoint."""
    for start, n in ((0, 1 << 13), (1 << 20, 1 << 15), ((1 << 25) + 12345, 1 << 17)):
        buckets: dict[int, list[int]] = {}
        for us in range(start, start + n):  # whole microseconds, in ms as Locust gives them
            buckets.setdefault(bucket_us(us / 1000), []).append(us)
        for recorded, members in list(buckets.items())[1:-1]:  # the ends may be cut off
            low, high = members[0], members[-1] + 1
            assert high - low <= max(1, low // 1024), (recorded, low, high)
            assert recorded == (low + high) // 2 if high - low > 1 else recorded == low
    assert [bucket_us(ms) for ms in (0.4567, 2.047, 2.048, 2.0499, 2.05, 4.096)] == [
        457, 2047, 2049, 2049, 2051, 4098,
    ]  # fmt: skip
    assert bucket_us(0.0) == bucket_us(-1.0) == 0


def test_merged_histograms_give_percentiles_within_the_bound() -> None:
    """Latencies recorded by three processes over several seconds, merged as analysis merges
    them: every percentile is within the bound of the exact one (nearest rank)."""
    rng = random.Random(11)
    latencies = [rng.lognormvariate(math.log(40), 1.2) for _ in range(30_000)]
    parts = [Histogram() for _ in range(3 * 5)]  # 3 processes x 5 seconds
    for i, ms in enumerate(latencies):
        parts[i % len(parts)].counts[bucket_us(ms)] += 1
    merged = Histogram()
    for part in parts:
        merged.merge(Histogram.from_json(json.loads(json.dumps(part.to_json()))))
    assert merged.total == len(latencies)
    ordered = sorted(latencies)
    for q in (50, 90, 95, 99, 99.9, 100):
        exact = ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]
        assert abs(merged.percentile_ms(q) - exact) <= max(exact / 2048, 0.0005) * (1 + 1e-12)
    assert merged.mean_ms() == pytest.approx(sum(latencies) / len(latencies), rel=1 / 2048)


def test_histogram_percentiles_are_exact_on_known_data() -> None:
    h = Histogram({v * 1000: 1 for v in range(1, 101)})  # 1..100 ms, one each
    assert h.percentile_ms(50) == 50
    assert h.percentile_ms(95) == 95
    assert h.percentile_ms(99.9) == 100
    assert h.max_ms() == 100
    assert h.mean_ms() == pytest.approx(50.5)
    other = Histogram({1000: 100})
    h.merge(other)
    assert h.total == 200
    assert h.percentile_ms(50) == 1


def test_recorder_round_trips_through_disk(tmp_path: Path) -> None:
    rec = Recorder(role="local")
    rec.request("GET /polls/[id]/", 12.0, None)
    rec.request("GET /polls/[id]/", 15.0, "HTTP 500: boom")
    rec.task_done()
    rec.votes["attempted"] += 1
    rec.mark("spawning_complete")
    rec.sample_cpu()
    rec.write(tmp_path)
    records = read_step_records(tmp_path)
    assert len(records.processes) == 1
    second = next(iter(records.processes[0].seconds))
    assert records.window_errors(second, second + 1) == {"HTTP 500: boom": 1}
    counts = records.window_counts(second, second + 1)
    assert counts["GET /polls/[id]/"]["count"] == 2
    assert counts["GET /polls/[id]/"]["failures"] == 1
    assert counts[TASK_KEY]["count"] == 1


def _bucket(count: int, ms: float, failures: int = 0) -> dict[str, Any]:
    return {"count": count, "failures": failures, "hist": {str(bucket_us(ms)): count}}


def _write(
    directory: Path,
    *,
    role: str = "local",
    seconds: dict[int, dict[str, Any]],
    events: dict[str, float],
    votes: dict[str, int],
    cpu: list[tuple[float, float]],
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    data = {
        "schema_version": 1,
        "pid": 1,
        "role": role,
        "events": events,
        "votes": votes,
        "cpu": cpu,
        "seconds": {str(s): v for s, v in seconds.items()},
    }
    (directory / f"record-{role}-{len(list(directory.iterdir()))}.json").write_text(
        json.dumps(data)
    )


def _steady(users: int, window: range, rps_per_name: int, ms: float) -> dict[int, dict[str, Any]]:
    """A closed loop that satisfies Little's law: users = X*R + tasks/s*1.5."""
    tasks = round((users - 3 * rps_per_name * ms / 1000) / 1.5)
    return {
        s: {
            "GET /a": _bucket(rps_per_name, ms),
            "POST /b": _bucket(rps_per_name, ms),
            "GET /c": _bucket(rps_per_name, ms),
            TASK_KEY: {"count": tasks, "failures": 0, "hist": {}},
        }
        for s in window
    }


CTX = StepContext(
    "gunicorn", "wsgi", 30, warmup_s=2, window_s=10, think_mean_s=1.5, votes_db=200, locust_exit=0
)


def test_window_excludes_warmup_and_drain(tmp_path: Path) -> None:
    start, end = window_bounds(T0 + 0.4, 2, 10)
    assert (start, end) == (T0 + 3, T0 + 13)
    seconds = _steady(30, range(start, end), 6, 50)
    # Slow failures just outside the window are excluded from its figures. (Few: a drain
    # request of 5 s was in flight for 4.5 s of the window, and Little's law counts that.)
    seconds[start - 1] = {"GET /a": _bucket(2, 5000, failures=2)}  # warm-up: excluded
    seconds[end] = {"GET /a": _bucket(2, 5000, failures=2)}  # drain: excluded
    _write(
        tmp_path,
        seconds=seconds,
        events={"spawning_complete": T0 + 0.4, "test_stopping": end + 0.25},
        votes={"attempted": 200, "acknowledged": 200},
        cpu=[(T0, 1.0), (end + 1, 2.0)],
    )
    row = analyse_step(read_step_records(tmp_path), CTX)
    assert row.status == "ok"
    assert row.requests == 180 and row.failures == 0
    assert row.rps == 18.0
    assert row.p95_ms == 50 and row.max_ms == 50
    assert row.integrity == "exact" and row.drained
    assert row.valid, row.invalid_reason
    assert row.gen_cpu_pct < 10


def test_saturated_generator_marks_the_step_invalid(tmp_path: Path) -> None:
    start, end = window_bounds(T0, 2, 10)
    _write(
        tmp_path,
        seconds=_steady(30, range(start, end), 6, 50),
        events={"spawning_complete": T0, "test_stopping": end + 0.25},
        votes={"attempted": 200, "acknowledged": 200},
        cpu=[(start, 0.0), (end, 9.5)],
    )  # 95 % of a core in the window
    row = analyse_step(read_step_records(tmp_path), CTX)
    assert not row.valid
    assert "load generator saturated" in row.invalid_reason
    assert row.gen_cpu_pct == pytest.approx(95)


def test_littles_law_violation_is_flagged(tmp_path: Path) -> None:
    start, end = window_bounds(T0, 2, 10)
    seconds = _steady(15, range(start, end), 6, 50)  # behaves like 15 users, claims 30
    _write(
        tmp_path,
        seconds=seconds,
        events={"spawning_complete": T0},
        votes={"attempted": 200, "acknowledged": 200},
        cpu=[],
    )
    row = analyse_step(read_step_records(tmp_path), CTX)
    assert "Little's law" in row.invalid_reason
    assert row.littles_users == pytest.approx(15, rel=0.1)


def test_truncated_window_and_data_loss_are_flagged(tmp_path: Path) -> None:
    start, end = window_bounds(T0, 2, 10)
    _write(
        tmp_path,
        seconds=_steady(30, range(start, end - 4), 6, 50),
        events={"spawning_complete": T0, "test_stopping": end - 4},
        votes={"attempted": 250, "acknowledged": 250},
        cpu=[],
    )
    row = analyse_step(read_step_records(tmp_path), CTX)  # database counted 200 of 250 acks
    assert row.integrity == "DATA_LOSS"
    assert "window truncated" in row.invalid_reason
    assert "database" in row.invalid_reason


def test_in_flight_votes_are_consistent_not_exact(tmp_path: Path) -> None:
    start, end = window_bounds(T0, 2, 10)
    _write(
        tmp_path,
        seconds=_steady(30, range(start, end), 6, 50),
        events={"spawning_complete": T0},
        votes={"attempted": 205, "acknowledged": 198, "lost": 2},
        cpu=[],
    )
    row = analyse_step(read_step_records(tmp_path), CTX)
    assert row.votes_inflight == 5 and not row.drained
    assert row.integrity == "consistent"


def test_worker_records_merge(tmp_path: Path) -> None:
    start, end = window_bounds(T0, 2, 10)
    half = _steady(15, range(start, end), 3, 50)
    _write(tmp_path, role="master", seconds={}, events={"spawning_complete": T0}, votes={}, cpu=[])
    for _ in range(2):
        _write(
            tmp_path,
            role="worker",
            seconds=half,
            events={},
            votes={"attempted": 100, "acknowledged": 100},
            cpu=[],
        )
    row = analyse_step(read_step_records(tmp_path), CTX)
    assert row.requests == 180
    assert row.votes_ok == 200 and row.integrity == "exact"
    assert row.gen_processes == 2


def test_no_records_is_a_failed_step(tmp_path: Path) -> None:
    row = analyse_step(read_step_records(tmp_path / "missing"), CTX)
    assert row.status == "failed" and not row.valid
    assert math.isnan(row.rps)


def test_harness_and_scenario_agree_on_shared_constants() -> None:
    """The harness cannot import loadtests/ when installed elsewhere, so it keeps copies."""
    from gatewaybench.analysis import records
    from gatewaybench.stack import verify
    from loadtests import pages

    assert records.TASK_KEY == TASK_KEY
    assert verify.CSRF_RE.pattern == pages.CSRF_RE.pattern
    assert verify.CHOICE_RE.pattern == pages.CHOICE_RE.pattern


def _thinking(users_thinking: int, users_busy: int, seconds: range) -> dict[int, dict[str, Any]]:
    """Each second: `users_busy` users' worth of 100 ms requests and `users_thinking` users'
    worth of 1.5 s think times (recorded where they began)."""
    thinks = round(users_thinking / 1.5)
    return {
        s: {"GET /a": _bucket(10 * users_busy, 100), THINK_KEY: _bucket(thinks, 1500)}
        for s in seconds
    }


@pytest.mark.parametrize(("thinking", "valid"), [(9, True), (6, False)])
def test_littles_law_measures_thinking_users_in_the_window(
    tmp_path: Path, thinking: int, valid: bool
) -> None:
    """10 users: one in a request at any time, nine thinking. With only six thinking, three
    users did neither: the generator did not hold them."""
    start, end = window_bounds(T0 + 0.4, 2, 10)
    _write(
        tmp_path,
        seconds=_thinking(thinking, 1, range(start - 3, end + 3)),
        events={"spawning_complete": T0 + 0.4, "test_stopping": end + 0.25},
        votes={},
        cpu=[(T0, 1.0), (end + 1, 2.0)],
    )
    ctx = StepContext("gunicorn", "wsgi", 10, 2, 10, 1.5, None, 0)
    row = analyse_step(read_step_records(tmp_path), ctx)
    assert row.littles_users == pytest.approx(1 + thinking, rel=0.02)
    assert row.valid is valid, row.invalid_reason


def test_the_recorder_keeps_think_times_where_they_began() -> None:
    rec = Recorder(role="local")
    rec.think(1.234)
    rec.think(1.234)
    (names,) = rec.to_json()["seconds"].values()
    assert names[THINK_KEY]["count"] == 2
    assert names[THINK_KEY]["hist"] == {str(bucket_us(1234)): 2}


CLOSED_KEYS = ["schema_version", "pid", "role", "events", "votes", "cpu", "seconds"]


def test_a_closed_model_record_has_exactly_the_keys_it_always_had() -> None:
    rec = Recorder(role="local")
    rec.request("GET /a", 1.0, None)
    assert list(rec.to_json()) == CLOSED_KEYS


def test_the_open_model_keys_round_trip_and_old_readers_ignore_them(tmp_path: Path) -> None:
    """Intended latencies beside the service times, arrivals and drops and dispatch lag per
    second of intended arrival; the step reader still sees only the service times."""
    rec = Recorder(role="local", open_model={"rate_per_s": 10.0, "seed": 1})
    rec.request("GET /gb-ok", 2.0, None)
    rec.intended_request("GET /gb-ok", 5.0, failed=False)
    rec.intended_request("GET /gb-ok", 7.0, failed=True)
    rec.arrival(T0 + 0.9, 0.3, dropped=False)
    rec.arrival(T0 + 0.95, 1.5, dropped=True)
    rec.arrival(T0 + 1.2, 0.1, dropped=False)
    data = json.loads(rec.write(tmp_path).read_text())
    assert list(data) == [*CLOSED_KEYS, "open_model", "intended", "arrivals", "lag"]
    assert data["open_model"] == {"rate_per_s": 10.0, "seed": 1}
    (intended,) = data["intended"].values()
    assert intended["GET /gb-ok"]["count"] == 2 and intended["GET /gb-ok"]["failures"] == 1
    assert intended["GET /gb-ok"]["hist"] == {str(bucket_us(5.0)): 1, str(bucket_us(7.0)): 1}
    assert data["arrivals"] == {
        str(T0): {"arrivals": 2, "dropped": 1}, str(T0 + 1): {"arrivals": 1, "dropped": 0},
    }  # fmt: skip
    assert data["lag"][str(T0)] == {
        "count": 2, "hist": {str(bucket_us(0.3)): 1, str(bucket_us(1.5)): 1},
    }  # fmt: skip
    records = read_step_records(tmp_path)
    (second,) = records.processes[0].seconds
    assert records.window_histogram(second, second + 1).total == 1


OPEN_CTX = StepContext(
    "gunicorn", "wsgi", 0, warmup_s=2, window_s=10, think_mean_s=math.nan, votes_db=None,
    locust_exit=0, model="open", rate=20.0,
)  # fmt: skip


def _open_record(
    tmp_path: Path, *, lag_ms: float, dropped_per_s: int, service_ms: float = 40
) -> None:
    """An open-model step: 20 arrivals/s meant for each second, `dropped_per_s` of them
    dropped; each request served in 40 ms, 40 ms + the lag from its intended start."""
    start, end = window_bounds(T0, 2, 10)
    seconds = {
        s: {"GET /polls/": _bucket(20 - dropped_per_s, service_ms)} for s in range(start, end)
    }
    _write(
        tmp_path,
        seconds=seconds,
        events={"spawning_complete": T0, "test_stopping": end + 0.25},
        votes={},
        cpu=[(start, 0.0), (end, 1.0)],
    )
    (path,) = tmp_path.glob("record-*.json")
    data = json.loads(path.read_text())
    data["intended"] = {
        str(s): {"GET /polls/": _bucket(20 - dropped_per_s, service_ms + lag_ms)} for s in seconds
    }
    data["arrivals"] = {str(s): {"arrivals": 20, "dropped": dropped_per_s} for s in seconds}
    data["lag"] = {str(s): {"count": 20, "hist": {str(bucket_us(lag_ms)): 20}} for s in seconds}
    path.write_text(json.dumps(data))


def test_an_open_step_reports_arrivals_drops_and_both_latencies(tmp_path: Path) -> None:
    _open_record(tmp_path, lag_ms=0.5, dropped_per_s=5)
    row = analyse_step(read_step_records(tmp_path), OPEN_CTX)
    assert (row.model, row.rate, row.users) == ("open", 20.0, 0)
    assert (row.arrivals, row.dropped, row.drop_pct) == (200, 50, 25.0)
    assert row.requests == 150 and row.p50_ms == pytest.approx(40, rel=1e-3)
    assert row.intended_p95_ms == pytest.approx(40.5, rel=1e-3)
    assert row.intended_mean_ms - row.mean_ms == pytest.approx(0.5, abs=0.05)
    assert row.lag_p99_ms == pytest.approx(0.5, rel=1e-3)
    assert math.isnan(row.littles_err_pct)  # Little's law with think times is the closed model's
    assert row.valid, row.invalid_reason  # drops are a result, not a flaw of the measurement
    assert (row.level_text, row.level_tag) == ("20 arrivals/s", "a20")


def test_an_open_step_whose_generator_ran_late_is_invalid(tmp_path: Path) -> None:
    _open_record(tmp_path, lag_ms=25, dropped_per_s=0)
    row = analyse_step(read_step_records(tmp_path), OPEN_CTX)
    assert not row.valid
    assert "load generator late: dispatch lag p99 25.0 ms > 10 ms" in row.invalid_reason


def test_a_small_lag_against_long_latencies_leaves_the_step_valid(tmp_path: Path) -> None:
    # p95 from the intended start 40 + 25 ms: 25 ms is above 5 % of it (3 ms): invalid above;
    # against a 1 s latency the same 25 ms lag is within 5 % (50 ms): valid.
    _open_record(tmp_path, lag_ms=25, dropped_per_s=0, service_ms=975)
    row = analyse_step(read_step_records(tmp_path), OPEN_CTX)
    assert row.intended_p95_ms == pytest.approx(1000, rel=1e-3)
    assert row.valid, row.invalid_reason
    assert row.intended_p50_ms - row.p50_ms == pytest.approx(25, rel=1e-2)
