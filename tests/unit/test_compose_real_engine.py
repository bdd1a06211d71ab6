"""The compose backend against a real Docker engine: a tiny run of one server.

Skipped wherever `docker info` fails (the machines this project is built on have the docker CLI
but no engine); kept in the suite so it runs wherever an engine exists. It pulls the pinned
images and builds the app image, so it is marked like the other tests that start real servers.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from gatewaybench.matrix import Cell
from gatewaybench.spec import LoadSettings, RunSpec


def _engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        done = subprocess.run(["docker", "info"], capture_output=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not _engine_answers(), reason="no Docker engine (`docker info` fails)"),
]


def test_tiny_compose_run_with_a_real_engine(tmp_path: Path) -> None:
    from gatewaybench.compose.backend import run_compose

    load = LoadSettings(users=(10,), ramp_s=1, warmup_s=2, window_s=5, processes=2)
    spec = RunSpec(cells=(Cell("gunicorn"),), workers=1, reports_dir=tmp_path, load=load)
    out, log = io.StringIO(), io.StringIO()
    assert run_compose(spec, out, log) == 0, log.getvalue()
    run_dir = Path(out.getvalue().strip().splitlines()[-1])
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "complete"
    rows = list(csv.DictReader((run_dir / "steps.csv").open()))
    assert rows and rows[0]["status"] == "ok" and rows[0]["integrity"] in ("exact", "consistent")
    project = json.loads((run_dir / "manifest.json").read_text())["resolved"]["compose_project"]
    left = subprocess.run(
        ["docker", "ps", "-a", "-q", "--filter", f"label=io.gatewaybench.project={project}"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert left.stdout.strip() == "", "containers left behind"
