"""`gatewaybench doctor` on a machine the project's own setup prepared: every check passes, and a
broken driver setup is named with its fix."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from gatewaybench import doctor, preflight
from gatewaybench.stack import upstream

pytestmark = pytest.mark.integration


def test_doctor_passes_here() -> None:
    out = io.StringIO()
    assert doctor.run_doctor(out) == 0, out.getvalue()
    text = out.getvalue()
    assert "ok    database drivers: psycopg2 in the environment; psycopg 3 apart" in text
    assert "9 servers" in text and text.strip().endswith("all checks passed")
    assert "ok    nginx echo module: nginx's echo module at /usr/lib/nginx/modules/" in text


def test_doctor_names_a_missing_psycopg3(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(preflight, "psycopg3_dir", lambda: tmp_path / "none")
    out = io.StringIO()
    assert doctor.run_doctor(out) == 1
    assert "FAIL  database drivers: psycopg 3 is not in" in out.getvalue()
    assert "make install" in out.getvalue()


def test_doctor_names_a_missing_echo_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upstream, "ECHO_MODULE_CANDIDATES", ("/nonexistent/echo.so",))
    out = io.StringIO()
    assert doctor.run_doctor(out) == 1
    assert "FAIL  nginx echo module: nginx's echo module" in out.getvalue()
    assert "apt-get install libnginx-mod-http-echo" in out.getvalue()
