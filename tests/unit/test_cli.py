"""Bad input: one line naming the problem and the fix, exit code 2, nothing started or written."""

from __future__ import annotations

import contextlib
import io
import os
import re
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gatewaybench import cli
from gatewaybench.backend import Database
from gatewaybench.context import RUN_MARKER_ENV, Context
from gatewaybench.errors import StackError
from gatewaybench.flags import RUN_FLAGS
from gatewaybench.load.measure import CellStack
from gatewaybench.matrix import Cell
from gatewaybench.runner import run_bench
from gatewaybench.spec import LoadSettings, RunSpec
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
    err = capsys.readouterr().err
    assert "GATEWAYBENCH_USERS" in err and "strictly increasing" in err
    assert len(err.strip().splitlines()) == 1, err


GATE_ENV = {
    "GATEWAYBENCH_BASE": "origin/main",
    "GATEWAYBENCH_CAND": "cand.toml",
    "GATEWAYBENCH_USERS": "20,200",
    "GATEWAYBENCH_DESIGN": "sequential",
    "GATEWAYBENCH_BLOCKS": "2",
    "GATEWAYBENCH_NO_RERUN": "true",
    "GATEWAYBENCH_PROGRESS": "off",
}


def test_environment_supplies_gate_defaults_and_cli_wins() -> None:
    args = cli.parse_args(["gate", "--blocks", "6"], GATE_ENV)
    assert (args.base, args.cand, args.users) == ("origin/main", "cand.toml", (20, 200))
    assert args.blocks == 6 and args.no_rerun is True and args.progress == "off"


def test_the_gate_gets_its_environment_and_step_summary(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from gatewaybench.gate import run as gate_run

    seen: dict[str, Any] = {}

    def fake_gate(opts: gate_run.GateOptions, environ: Mapping[str, str], **kw: Any) -> int:
        seen.update(opts=opts, environ=environ, **kw)
        return 0

    monkeypatch.setattr(gate_run, "run_gate", fake_gate)
    summary = tmp_path / "summary.md"
    environ = {**GATE_ENV, "GITHUB_STEP_SUMMARY": str(summary), "PATH": "/usr/bin"}
    assert cli.main(["gate"], environ) == 0
    opts = seen["opts"]
    assert (opts.base, opts.blocks, opts.rerun, opts.step_summary) == (
        "origin/main",
        2,
        False,
        summary,
    )
    assert opts.flags["users"] == (20, 200) and "progress" not in opts.flags
    assert seen["environ"] == environ and seen["progress"] == "off"


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"GATEWAYBENCH_BLOCKS": "0"}, "GATEWAYBENCH_BLOCKS"),
        ({"GATEWAYBENCH_WINDOW": "2.5"}, "GATEWAYBENCH_WINDOW"),
        ({"GATEWAYBENCH_NO_RERUN": "maybe"}, "GATEWAYBENCH_NO_RERUN"),
        ({"GATEWAYBENCH_PROGRESS": "fancy"}, "GATEWAYBENCH_PROGRESS"),
    ],
)
def test_a_bad_gate_environment_value_is_one_line_naming_it(
    environ: dict[str, str], variable: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["gate", "--base", ".", "--cand", "."], environ) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"gatewaybench: {variable}") and f"unset {variable}" in err, err
    assert len(err.strip().splitlines()) == 1, err


def test_a_bad_variable_is_read_only_by_the_command_that_has_it(tmp_path: Path) -> None:
    args = cli.parse_args(["report", str(tmp_path)], {"GATEWAYBENCH_WINDOW": "soon"})
    assert args.run_dirs == [tmp_path]


@pytest.mark.parametrize("command", [["run"], ["gate"], ["compose", "render"]])
def test_every_option_names_its_variable_in_its_help(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        cli.main([*command, "--help"], {})
    text = " ".join(capsys.readouterr().out.split())
    names = [f.dest.upper() for f in RUN_FLAGS]
    if command == ["gate"]:
        names += ["BASE", "CAND", "BLOCKS", "NO_RERUN", "REGRESS_PCT", "WARN_PCT", "PROGRESS"]
    if command == ["run"]:
        names += ["BACKEND", "PROGRESS"]
    for name in names:
        assert f"[env GATEWAYBENCH_{name}]" in text


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["run", "--nope"], "unrecognized arguments: --nope; see `gatewaybench run --help`"),
        (["gate", "--base", ".", "--cand", ".", "--nope"],
         "unrecognized arguments: --nope; see `gatewaybench gate --help`"),
        (["gate", "--nope"],
         "the following arguments are required: --base, --cand; see `gatewaybench gate --help`"),
        (["compose", "render", "--nope"],
         "unrecognized arguments: --nope; see `gatewaybench compose render --help`"),
        (["--nope"], "the following arguments are required: command; see `gatewaybench --help`"),
    ],
)  # fmt: skip
def test_an_argument_error_names_the_program_once(
    argv: list[str], line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(argv, {}) == 2
    assert capsys.readouterr().err == f"gatewaybench: {line}\n"


@dataclass
class _NoDatabase:
    """A backend whose database never starts: the run fails at once, as a real one can."""

    child_envs: list[dict[str, str]] = field(default_factory=list)
    name: str = "test"

    def manifest_resolved(self, spec: RunSpec) -> dict[str, Any]:
        return {}

    def versions(self) -> dict[str, str]:
        return {}

    def session(self, ctx: Context) -> contextlib.nullcontext[None]:
        return contextlib.nullcontext()

    def start_database(self, ctx: Context, stack: contextlib.ExitStack) -> Database:
        self.child_envs.append(ctx.child_env())
        raise StackError("no database in this test", "none needed")

    def start_cell(self, *args: object) -> CellStack:
        raise AssertionError("no cell starts without a database")

    def cell_facts(self, ctx: Context, cell: Cell) -> dict[str, Any]:
        return {}


def test_a_run_leaves_os_environ_as_it_was_and_marks_its_children(tmp_path: Path) -> None:
    before = dict(os.environ)
    backend = _NoDatabase()
    out, log = io.StringIO(), io.StringIO()
    spec = RunSpec(reports_dir=tmp_path, load=LoadSettings(users=(5,)))
    code = run_bench(spec, {"PATH": "/usr/bin"}, out=out, log=log, backend_for=lambda _s: backend)
    assert code == 1 and "no database in this test" in log.getvalue()
    assert dict(os.environ) == before
    run_dir = out.getvalue().strip().splitlines()[-1]
    assert backend.child_envs == [{"PATH": "/usr/bin", RUN_MARKER_ENV: run_dir}]


# Below the CLI, configuration arrives as arguments: the environment is read once, in
# cli.main. Each exception here says why it may read it itself.
ENVIRON_ALLOWED = {
    "cli.py": "the one place the environment is read",
    # Engine discovery for callers outside a run (the engine tests, which have no CLI);
    # a run passes its own environment (the line is marked `environ-ok`).
    "compose/host.py": "container_engine without an environment",
}
ENVIRON_USE = re.compile(
    r"\bos\.(environ|environb|getenv|putenv|unsetenv)\b|from os import .*environ"
)


def test_nothing_below_the_cli_reads_or_writes_os_environ() -> None:
    package = Path(cli.__file__).parent
    found = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package).as_posix()
        for number, text in enumerate(path.read_text().splitlines(), 1):
            if not ENVIRON_USE.search(text):
                continue
            if rel == "cli.py" or (rel in ENVIRON_ALLOWED and "environ-ok" in text):
                continue
            found.append(f"{rel}:{number}: {text.strip()}")
    assert not found, "os.environ used below the CLI:\n" + "\n".join(found)


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
        reports_dir = tmp_path / "reports"
        reports_dir.write_text("not a directory")
    else:
        reports_dir = Path("/proc/gatewaybench-reports")  # not creatable, even by root
    code = cli.main(["run", "--users", "5", "--reports-dir", str(reports_dir)])
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
