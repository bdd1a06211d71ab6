"""The open model's arrival process and in-flight cap (loadtests/arrivals.py)."""

from __future__ import annotations

import itertools
import statistics

import pytest

from loadtests.arrivals import InflightCap, OpenConfig, PoissonSchedule, process_seed, share

DRAWS = 200_000
T0 = 1_800_000_000.0


def _times(schedule: PoissonSchedule, n: int) -> list[float]:
    return list(itertools.islice(schedule, n))


def _gaps(rate: float, seed: int, n: int = DRAWS) -> list[float]:
    schedule = PoissonSchedule(rate, T0, seed)
    return [schedule.gap() for _ in range(n)]


@pytest.mark.parametrize(("rate", "seed"), [(500.0, 1), (3.0, 42), (1000.0, process_seed(7, 3))])
def test_gaps_are_exponential_mean_and_cv(rate: float, seed: int) -> None:
    """Exponential gaps: mean 1/rate, coefficient of variation 1 (a Poisson process)."""
    gaps = _gaps(rate, seed)
    mean = statistics.fmean(gaps)
    cv = statistics.pstdev(gaps) / mean
    assert mean == pytest.approx(1 / rate, rel=0.01)
    assert cv == pytest.approx(1.0, rel=0.02)
    assert min(gaps) > 0
    times = _times(PoissonSchedule(rate, T0, seed), 1000)  # the schedule sums the same gaps
    assert times[-1] - T0 == pytest.approx(sum(gaps[:1000]), abs=1e-6)


def test_counts_per_second_are_poisson() -> None:
    """Arrivals per second: mean rate and variance rate (Poisson's index of dispersion 1)."""
    rate = 200.0
    times = _times(PoissonSchedule(rate, T0, 9), 400_000)
    counts = [0] * int(times[-1] - T0)
    for t in times:
        if (i := int(t - T0)) < len(counts):
            counts[i] += 1
    assert statistics.fmean(counts) == pytest.approx(rate, rel=0.01)
    assert statistics.pvariance(counts) / rate == pytest.approx(1.0, abs=0.1)


def test_the_same_seed_gives_the_same_schedule() -> None:
    first = _times(PoissonSchedule(250.0, T0, 5), 1000)
    assert first == _times(PoissonSchedule(250.0, T0, 5), 1000)
    assert first != _times(PoissonSchedule(250.0, T0, 6), 1000)
    assert first[0] > T0 and first == sorted(first)


def test_processes_get_independent_streams() -> None:
    """Each process's stream differs, and the streams are uncorrelated; together they offer the
    whole rate (the superposition of Poisson processes is Poisson)."""
    config = OpenConfig(rate_per_s=1000.0, max_inflight=10, seed=3, arrival="request", path="/")
    plans = [config.for_process(i, 4, T0) for i in range(4)]
    assert len({process_seed(3, i) for i in range(100)}) == 100
    assert process_seed(3, 0) != process_seed(4, 0)
    streams = [_gaps(p.schedule.rate_per_s, process_seed(3, p.index), 20_000) for p in plans]
    assert all(p.schedule.rate_per_s == 250.0 for p in plans)
    for a, b in itertools.combinations(streams, 2):
        assert a != b
        assert abs(statistics.correlation(a, b)) < 0.03  # |r| ~ 1/sqrt(20000) = 0.007
    horizon = T0 + 200  # 200 s at 1000/s: 200,000 merged arrivals
    merged = sorted(
        itertools.chain.from_iterable(
            itertools.takewhile(lambda t: t < horizon, p.schedule) for p in plans
        )
    )
    assert len(merged) == pytest.approx(200_000, rel=0.01)
    gaps = [b - a for a, b in itertools.pairwise(merged)]
    assert statistics.fmean(gaps) == pytest.approx(1 / 1000, rel=0.02)
    assert statistics.pstdev(gaps) / statistics.fmean(gaps) == pytest.approx(1.0, rel=0.03)


def test_rate_zero_never_arrives() -> None:
    assert _times(PoissonSchedule(0.0, T0, 1), 5) == []


def test_the_cap_admits_up_to_n_and_drops_beyond() -> None:
    cap = InflightCap(3)
    assert [cap.admit() for _ in range(5)] == [True, True, True, False, False]
    assert (cap.inflight, cap.admitted, cap.dropped) == (3, 3, 2)
    cap.release()
    assert cap.admit() and not cap.admit()
    assert (cap.inflight, cap.admitted, cap.dropped) == (3, 4, 3)


def test_rate_and_cap_are_shared_over_processes_exactly() -> None:
    assert [share(10, 4, i) for i in range(4)] == [3, 3, 2, 2]
    assert [share(2, 4, i) for i in range(4)] == [1, 1, 0, 0]
    config = OpenConfig(rate_per_s=90.0, max_inflight=7, seed=1, arrival="session", path="/")
    plans = [config.for_process(i, 3, T0) for i in range(3)]
    assert sum(p.cap.cap for p in plans) == 7
    assert sum(p.schedule.rate_per_s for p in plans) == pytest.approx(90.0)
    assert plans[1].describe() == {
        "process_index": 1, "processes": 3, "process_rate": 30.0, "process_max_inflight": 2,
    }  # fmt: skip


def test_config_from_environment() -> None:
    env = {"GB_RATE": "250", "GB_MAX_INFLIGHT": "50", "GB_ARRIVAL_SEED": "9",
           "GB_ARRIVAL": "request", "GB_ARRIVAL_PATH": "/gb-ok"}  # fmt: skip
    assert OpenConfig.from_env(env) == OpenConfig(250.0, 50, 9, "request", "/gb-ok")
    assert OpenConfig.from_env({}).arrival == "session"
    fixed = OpenConfig.from_env({"GB_ARRIVAL": "session"}, arrival="request", path="/x")
    assert (fixed.arrival, fixed.path) == ("request", "/x")
    for bad in ({"GB_RATE": "-1"}, {"GB_RATE": "nan"}, {"GB_MAX_INFLIGHT": "0"},
                {"GB_ARRIVAL": "burst"}, {"GB_ARRIVAL_PATH": "gb-ok"}):  # fmt: skip
        with pytest.raises(ValueError, match="GB_"):
            OpenConfig.from_env(bad)
