"""Bad input: one line naming the problem and the fix, exit code 2, nothing started or written."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from gatewaybench import cli
from gatewaybench.stack import nginx, postgres


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


BAD_INPUTS = [
    (["run", "--servers", "gunicorn,waitress"], "unknown server 'waitress'"),
    (["run", "--users", "100,50"], "strictly increasing"),
    (["run", "--users", "ten"], "malformed"),
    (["run", "--users", "0:10:5"], "positive"),
    (["run", "--window", "0"], "--window must be positive"),
    (["run", "--window", "2.5"], "not a whole number"),
    (["run", "--warmup", "-1"], "--warmup must not be negative"),
    (["run", "--ramp", "soon"], "not a number"),
    (["run", "--workers", "0"], "--workers must be positive"),
    (["run", "--label", "a/b"], "label"),
    (["run", "--bogus"], "unrecognized arguments"),
    (["bench"], "invalid choice"),
    (["run", "--cells", "uvicorn+fast"], "'fast' is not a views, db or driver choice"),
    (["run", "--preset", "fastest"], "unknown preset 'fastest'"),
    (["run", "--threads", "0"], "--threads must be positive"),
    (["run", "--cpu-work-ms", "-1"], "--cpu-work-ms must not be negative"),
    (
        [
            "run",
            "--app-dir",
            "/nonexistent-app",
            "--wsgi",
            "a.wsgi:app",
            "--servers",
            "gunicorn",
            "--locustfile",
            "/x.py",
        ],
        "is not a directory",
    ),
    (
        [
            "run",
            "--app-dir",
            "/tmp",
            "--wsgi",
            "a.wsgi:app",
            "--servers",
            "gunicorn",
            "--locustfile",
            "/nonexistent/locustfile.py",
        ],
        "is not a file",
    ),
    (["run", "--wsgi", "a.wsgi:app"], "only apply with --app-dir"),
    (["run", "--upstream-ms", "-20"], "must not be negative"),
    (["run", "--upstream-ms", "0,fast"], "is not a list of whole ms"),
    (["run", "--upstream-ms", "100,20"], "must be strictly increasing"),
    (["run", "--upstream-ms", "100,100"], "must be strictly increasing"),
    (["run", "--upstream-ms", "20000"], "not less than the client timeout 10 s"),
    (["run", "--upstream-ms", "3000", "--upstream-calls", "4"], "not less than the client"),
    (["run", "--upstream-calls", "0"], "--upstream-calls must be positive"),
    (["run", "--db-wait-ms", "-5"], "--db-wait-ms must not be negative"),
    (["run", "--cells", "gunicorn@fast"], "the upstream wait must be whole ms"),
    (["run", "--cells", "gunicorn@20ms", "--upstream-ms", "0,20"], "use one of the two"),
    (["run", "--cells", "gunicorn@20ms,uvicorn"], "some cells have an upstream wait"),
    (["run", "--auto-steps", "1"], "--auto-steps must be at least 2"),
    (["run", "--slow-upload-pct", "100"], "is not a share of users"),
    (["run", "--slow-upload-pct", "10", "--window", "4"], "not less than the 4 s window"),
    (["run", "--slow-upload-pct", "10", "--slow-upload-kbps", "0"], "must be positive"),
    (["run", "--request-buffering", "maybe"], "give on, off or on,off"),
    (["compare", "/nonexistent-run-a", "/nonexistent-run-b"], "is not a run directory"),
]


@pytest.mark.parametrize(("argv", "needle"), BAD_INPUTS)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str], needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main([*argv, "--reports-dir", str(tmp_path / "r")] if argv[0] == "run" else argv)
    err = capsys.readouterr().err
    assert code == 2
    assert needle in err
    assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "r").exists(), "nothing may be written on bad input"


def test_taken_port_is_refused_before_anything_starts(
    taken_port: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["run", "--nginx-port", str(taken_port), "--reports-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"port {taken_port}" in err and "already in use" in err
    assert list(tmp_path.iterdir()) == []


def test_missing_nginx_names_the_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(nginx.shutil, "which", lambda _name: None)
    monkeypatch.setattr(nginx, "NGINX_CANDIDATES", (str(tmp_path / "no-nginx"),))
    code = cli.main(["run", "--reports-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "nginx not found" in err and "apt-get install nginx" in err
    assert not (tmp_path / "r").exists()


def test_missing_postgres_names_the_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(postgres.shutil, "which", lambda _name: None)
    monkeypatch.setattr(postgres.glob, "glob", lambda _pattern: [])
    code = cli.main(["run", "--reports-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "PostgreSQL server binaries" in err and "apt-get install" in err
    assert not (tmp_path / "r").exists()


def test_environment_supplies_defaults_and_cli_wins() -> None:
    parser = cli.build_parser({"GATEWAYBENCH_USERS": "5,10", "GATEWAYBENCH_SERVERS": "daphne"})
    args = parser.parse_args(["run", "--servers", "uvicorn"])
    assert args.users == (5, 10)
    assert args.servers == ("uvicorn",)


def test_bad_environment_value_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GATEWAYBENCH_USERS", "3,2")
    assert cli.main(["run"]) == 2
    assert "strictly increasing" in capsys.readouterr().err


def test_report_rejects_a_directory_that_is_not_a_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["report", str(tmp_path)]) == 2
    assert "is not a run directory" in capsys.readouterr().err


BAD_CONFIG_FILES = [
    ('window = "long"\n', "window must be a whole number"),
    ("wrokers = 2\n", "unknown key 'wrokers'"),
    ("users = [10,\n", "not valid TOML"),
    ('[[cells]]\nserver = "gunicorn"\nviews = "async"\n', "async views need an ASGI server"),
]


@pytest.mark.parametrize(("text", "needle"), BAD_CONFIG_FILES)
def test_bad_config_file_is_one_line_and_exit_2(
    text: str, needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "m.toml"
    config.write_text(text)
    code = cli.main(["run", "--config", str(config), "--reports-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and str(config) in err
    assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("kind", ["a file", "under /proc"])
def test_unwritable_reports_dir_is_one_line_and_exit_2(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if kind == "a file":
        target = tmp_path / "reports"
        target.write_text("not a directory")
    else:
        target = Path("/proc/gatewaybench-reports")  # not creatable, even by root
    code = cli.main(["run", "--users", "5", "--reports-dir", str(target)])
    err = capsys.readouterr().err
    assert code == 2 and "reports directory" in err and "--reports-dir" in err, err
    assert len(err.strip().splitlines()) == 1, err


def test_users_beyond_the_fd_limit_are_refused_naming_the_limit(tmp_path: Path) -> None:
    """A real low limit (set in the child, as `ulimit -n` would), not a mocked one."""
    import resource
    import subprocess
    import sys

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (512, 512))

    out = subprocess.run(
        [sys.executable, "-m", "gatewaybench", "run", "--users", "1000",
         "--reports-dir", str(tmp_path / "r")],
        capture_output=True, text=True, preexec_fn=low_limit, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert "file-descriptor limit 512 is too low for 1000 users" in out.stderr
    assert "ulimit -n" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()
