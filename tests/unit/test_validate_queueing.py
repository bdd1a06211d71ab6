"""scripts/validate_queueing.py's arithmetic: the service moments from a latency histogram and
the Pollaczek-Khinchine prediction, checked against closed forms (M/D/1 and M/M/1)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest

from gatewaybench.analysis.histogram import Histogram

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "validate_queueing.py"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("validate_queueing", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_service_moments_come_from_the_histogram() -> None:
    vq = _script()
    service = vq.moments(Histogram({20_000: 3, 30_000: 1}))  # 20, 20, 20, 30 ms
    assert service.count == 4
    assert service.mean_ms == pytest.approx(22.5)
    assert service.second_moment_ms2 == pytest.approx((3 * 400 + 900) / 4)
    assert service.cv == pytest.approx(math.sqrt(525 - 22.5**2) / 22.5)


@pytest.mark.parametrize("rho", [0.3, 0.5, 0.7])
def test_a_deterministic_service_gives_md1s_mean(rho: float) -> None:
    vq = _script()
    s = 25.0
    p = vq.predict(vq.Service(s, s * s, 1000), rho)
    assert p.rate == pytest.approx(rho / 0.025)
    assert p.mean_ms == pytest.approx(s + rho * s / (2 * (1 - rho)))  # M/D/1


@pytest.mark.parametrize("rho", [0.3, 0.5, 0.7])
def test_an_exponential_service_gives_mm1s_mean_and_p95(rho: float) -> None:
    vq = _script()
    s = 25.0
    p = vq.predict(vq.Service(s, 2 * s * s, 1000), rho)  # E[S^2] = 2 E[S]^2
    assert p.mean_ms == pytest.approx(s / (1 - rho))  # M/M/1
    # M/M/1's wait is exactly 0 w.p. 1 - rho, else exponential with mean S/(1 - rho): the
    # approximation's tail is exact there, so its p95 wait is the true one.
    true_wait_p95 = s / (1 - rho) * math.log(rho / 0.05)
    assert p.p95_ms == pytest.approx(s + true_wait_p95)
