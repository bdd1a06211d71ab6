"""Reports from a committed fixture run directory: golden files, determinism, read-only raw data.

Set GATEWAYBENCH_UPDATE_GOLDEN=1 to rewrite the golden files after an intended change.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from gatewaybench import cli
from gatewaybench.report.render import render_run
from tests.conftest import check_golden

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "run-small"
IMG_RE = re.compile(r'src="data:image/svg\+xml;base64,[^"]+"')


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    run_dir = tmp_path / "20261121T035239Z-fixture"
    shutil.copytree(FIXTURE, run_dir)
    return run_dir


def _digests(directory: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in directory.iterdir()
        if p.is_file()
    }


@dataclass(frozen=True)
class Rendered:
    run_dir: Path
    paths: list[Path]
    raw_before: dict[str, str]  # the run directory's files before the report was rendered
    files: dict[str, bytes]  # what the render wrote


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    """The fixture run rendered once, for the tests that only read its report."""
    run_dir = tmp_path_factory.mktemp("rendered") / "20261121T035239Z-fixture"
    shutil.copytree(FIXTURE, run_dir)
    raw_before = _digests(run_dir)
    paths = render_run(run_dir)
    return Rendered(run_dir, paths, raw_before, {p.name: p.read_bytes() for p in paths})


def test_report_files_match_golden(rendered: Rendered) -> None:
    run_dir = rendered.run_dir
    assert [p.name for p in rendered.paths] == ["report.html", "summary.md", "results.json"]
    html = (run_dir / "report.html").read_text()
    check_golden("report.structure.html", IMG_RE.sub('src="(figure)"', html))
    check_golden("summary.md", (run_dir / "summary.md").read_text())
    check_golden("results.json", (run_dir / "results.json").read_text())
    after = _digests(run_dir)
    raw_before = rendered.raw_before
    assert {k: after[k] for k in raw_before} == raw_before, "report modified raw data"


def test_report_content(rendered: Rendered) -> None:
    run_dir = rendered.run_dir
    html = (run_dir / "report.html").read_text()
    assert "http://" not in html.replace("http://127.0.0.1", "") and "https://" not in html
    assert "<script" not in html and "<link" not in html  # nothing to fetch, nothing to run
    assert html.count("<img ") == 7 and html.count('alt="') >= 7
    assert "uvicorn held 10 users" in html and "PostgreSQL" in html
    assert 'class="s4"' in html or 'class="s3"' in html  # uvicorn's 28 % failures coloured
    assert 'title="load generator saturated' in html  # the invalid cell says why
    summary = (run_dir / "summary.md").read_text()
    assert "| uvicorn | 0.0 | 28.0 |" in summary
    assert "| gunicorn | 0.0 | 0.0* |" in summary
    results = json.loads((run_dir / "results.json").read_text())
    assert results["schema_version"] == 1 and len(results["steps"]) == 4
    assert results["failures"][0]["source"] == "PostgreSQL"


def test_rebuilding_gives_identical_files(rendered: Rendered, tmp_path: Path) -> None:
    run_dir = tmp_path / rendered.run_dir.name  # a copy, report included: rebuilt over it
    shutil.copytree(rendered.run_dir, run_dir)
    second = {p.name: p.read_bytes() for p in render_run(run_dir)}
    assert rendered.files == second


def test_comparison_report_shows_differences(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "20261121T040000Z-other"
    shutil.copytree(run_dir, other)
    steps = (other / "steps.csv").read_text().replace("28.033", "14.000")
    (other / "steps.csv").write_text(steps)
    out = tmp_path / "cmp"
    assert cli.main(["report", str(run_dir), str(other), "--out", str(out)]) == 0
    md = (out / "compare.md").read_text()
    assert "Δ 20261121T040000Z-other - base" in md
    assert "-14.0 (-50 %)" in md
    html = (out / "compare.html").read_text()
    assert html.count("<img ") == 3 and "<table>" in html
    assert str(out / "compare.html") in capsys.readouterr().out


def test_report_refuses_a_malformed_run_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "manifest.json").write_text("{not json")
    (tmp_path / "steps.csv").write_text("server,users\n")
    assert cli.main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "malformed manifest.json (JSONDecodeError)" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "report.html").exists()
