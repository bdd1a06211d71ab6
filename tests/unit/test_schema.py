"""Schema versions are checked wherever a run directory or a step's records are read: the
committed fixtures read, a run without schema_version reads as version 1, a newer (or
unreadable) version is refused in one line naming it and the fix."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from gatewaybench import cli
from gatewaybench.analysis.records import read_step_records
from gatewaybench.analysis.summary import run_summary
from gatewaybench.errors import StackError, UsageError
from gatewaybench.report.data import load_run
from gatewaybench.results import schema, stale
from gatewaybench.results.schema import SCHEMA_VERSION, read_manifest, schema_problem

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _copy(name: str, tmp_path: Path, **changes: object) -> Path:
    """A copy of a fixture run with manifest keys changed (None removes the key)."""
    run_dir = tmp_path / name
    shutil.copytree(FIXTURES / name, run_dir)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    for key, value in changes.items():
        manifest.pop(key) if value is None else manifest.update({key: value})
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    return run_dir


@pytest.mark.parametrize("name", ["run-small", "run-io"])
def test_the_fixtures_read(name: str) -> None:
    run = load_run(FIXTURES / name)
    assert run.manifest["schema_version"] == SCHEMA_VERSION and not run.steps.empty
    assert "Requests/sec by server x users" in run_summary(FIXTURES / name)


def test_a_manifest_without_schema_version_reads_as_version_1(tmp_path: Path) -> None:
    run_dir = _copy("run-small", tmp_path, schema_version=None)
    assert "schema_version" not in load_run(run_dir).manifest
    assert run_summary(run_dir) == run_summary(FIXTURES / "run-small")


def test_a_newer_run_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = _copy("run-small", tmp_path, schema_version=SCHEMA_VERSION + 1)
    assert cli.main(["report", str(run_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"schema_version {SCHEMA_VERSION + 1}, newer than this gatewaybench reads" in err
    assert "update gatewaybench (git pull && make install)" in err
    assert "the run was made at commit 4291a0c64f45" in err
    assert not (run_dir / "report.html").exists()
    with pytest.raises(UsageError, match="newer than"):
        run_summary(run_dir)


@pytest.mark.parametrize("version", ["1", 1.0, True, 0, None])
def test_a_version_that_is_not_a_number_is_refused(tmp_path: Path, version: object) -> None:
    run_dir = _copy("run-small", tmp_path)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    (run_dir / "manifest.json").write_text(json.dumps({**manifest, "schema_version": version}))
    with pytest.raises(UsageError, match="not a version number") as info:
        read_manifest(run_dir)
    assert info.value.fix == "restore manifest.json or re-run the bench"


def test_an_older_version_than_the_code_reads_is_refused_naming_the_writer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What a bump that does not migrate version 1 would do (there is no such bump yet)."""
    monkeypatch.setattr(schema, "READABLE", range(2, 4))
    with pytest.raises(UsageError) as info:
        read_manifest(FIXTURES / "run-small")
    assert info.value.problem.endswith(
        "has schema_version 1, older than this gatewaybench reads (versions 2 to 3)"
    )
    assert info.value.fix == (
        "read it with the gatewaybench that wrote it (the run was made at commit 4291a0c64f45), "
        "or re-run the bench"
    )
    assert schema_problem("m.json", {"schema_version": 3}, range(2, 4)) is None


def test_a_manifest_that_is_not_an_object_is_malformed(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text("[1, 2]")
    with pytest.raises(UsageError, match=r"malformed manifest\.json"):
        read_manifest(tmp_path)
    with pytest.raises(UsageError, match="is not a run directory"):
        read_manifest(tmp_path / "missing")


def test_stale_recovery_leaves_a_newer_runs_directory_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stale, "sweep_temp_dirs", list)  # the machine's /tmp is not the test's
    newer = _copy("run-small", tmp_path, schema_version=SCHEMA_VERSION + 1, status="running")
    before = (newer / "manifest.json").read_text()
    current = _copy("run-io", tmp_path, status="running")  # its harness (none recorded) is dead
    assert stale.recover_stale_runs(tmp_path) == [
        "run-io: its harness was killed; marked interrupted, cleaned up"
    ]
    assert (newer / "manifest.json").read_text() == before
    assert read_manifest(current)["status"] == "interrupted"


def test_a_newer_record_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "record-local-1.json").write_text(json.dumps({"schema_version": 2, "role": "x"}))
    with pytest.raises(StackError, match="schema_version 2, newer than this gatewaybench reads"):
        read_step_records(tmp_path)
