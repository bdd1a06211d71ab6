"""Command line: the one place argv and the environment are read.

Every flag of `run` may also come from GATEWAYBENCH_<FLAG> (e.g. GATEWAYBENCH_USERS=10,20);
the command line wins. Errors a user can cause end in one line and exit code 2.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

from gatewaybench.compose import cli as compose_cli
from gatewaybench.config import build_spec
from gatewaybench.errors import GatewaybenchError, UsageError
from gatewaybench.flags import RUN_FLAGS
from gatewaybench.spec import RunSpec

ENV_PREFIX = "GATEWAYBENCH_"


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}", f"see `{self.prog} --help`")


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    # No defaults here: an absent flag is None, so a preset or config file can supply it.
    for f in RUN_FLAGS:
        if f.convert is None:
            p.add_argument(f.flag, action="store_true", default=None, help=f.help)
        else:
            p.add_argument(f.flag, type=f.convert, default=None, help=f.help)


GATE_ONLY = ("base", "cand", "blocks", "no_rerun", "regress_pct", "warn_pct")


def _add_gate(sub: Any) -> None:
    gate = sub.add_parser(
        "gate",
        help="base vs candidate in one job (A B B A): exit 0 pass, 1 regression, 3 inconclusive",
    )
    gate.add_argument("--base", required=True, help="'.', a .toml config, env:VENV or a git ref")
    gate.add_argument("--cand", required=True, help="'.', a .toml config, env:VENV or a git ref")
    gate.add_argument("--blocks", type=_positive_int, default=None, help="A B B A blocks (4)")
    gate.add_argument("--no-rerun", action="store_true", help="no automatic re-run")
    gate.add_argument("--regress-pct", type=_positive_float, default=None, help="threshold (10)")
    gate.add_argument("--warn-pct", type=_positive_float, default=None, help="warn from (5)")
    _add_run_flags(gate)


def _positive_int(text: str) -> int:
    value = _positive_float(text)
    if value != int(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number")
    return int(value)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be positive")
    return value


def _gate(args: argparse.Namespace) -> int:
    from gatewaybench.gate.run import DEFAULT_BLOCKS, GateOptions, run_gate
    from gatewaybench.gate.verdict import DEFAULT_THRESHOLDS

    flags = {k: v for k, v in vars(args).items()
             if k not in ("command", *GATE_ONLY) and v is not None}  # fmt: skip
    flags.setdefault("servers", ("gunicorn",))
    thresholds = replace(
        DEFAULT_THRESHOLDS,
        regress_pct=args.regress_pct or DEFAULT_THRESHOLDS.regress_pct,
        warn_pct=args.warn_pct or DEFAULT_THRESHOLDS.warn_pct,
    )
    options = GateOptions(
        args.base, args.cand, flags, args.blocks or DEFAULT_BLOCKS, thresholds, not args.no_rerun
    )
    return run_gate(options)


def _apply_env_defaults(p: argparse.ArgumentParser, environ: dict[str, str]) -> None:
    """GATEWAYBENCH_<FLAG> becomes the flag's default; argparse converts it like a CLI value."""
    for action in p._actions:
        for opt in action.option_strings:
            if not opt.startswith("--") or opt == "--help":
                continue
            name = ENV_PREFIX + opt[2:].upper().replace("-", "_")
            if name in environ and environ[name] != "":
                value: object = environ[name]
                if isinstance(action, argparse._StoreTrueAction):
                    value = environ[name].lower() in ("1", "true", "yes")
                p.set_defaults(**{action.dest: value})


def build_parser(environ: dict[str, str]) -> argparse.ArgumentParser:
    parser = OneLineParser(prog="gatewaybench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    run = sub.add_parser("run", help="run the benchmark matrix")
    _add_run_flags(run)
    run.add_argument(
        "--backend",
        choices=("local", "compose"),
        default=None,
        help="local processes (default) or Docker containers via the docker SDK",
    )
    _apply_env_defaults(run, environ)
    report = sub.add_parser("report", help="render report.html, summary.md and results.json")
    report.add_argument("run_dirs", nargs="+", type=Path)
    report.add_argument("--out", type=Path, help="where a comparison of several runs goes")
    compare = sub.add_parser(
        "compare",
        help="candidate run vs base run: verdict per server x metric; exit 0 ok, 1 regression, "
        "3 inconclusive",
    )
    compare.add_argument("base", type=Path)
    compare.add_argument("cand", type=Path)
    compare.add_argument("--out", type=Path, help="where the comparison goes")
    _add_gate(sub)
    sub.add_parser("doctor", help="check this machine can run a bench")
    compose_cli.add_subcommand(sub)
    return parser


def spec_from_args(a: argparse.Namespace) -> RunSpec:
    """Flags (and GATEWAYBENCH_* variables) over the config file over the preset."""
    skip = ("command", "backend")
    given = {k: v for k, v in vars(a).items() if k not in skip and v is not None}
    return build_spec(given)


def _report(run_dirs: Sequence[Path], out: Path | None) -> int:
    """Render each run's report; with several runs, a comparison report as well."""
    from gatewaybench.report.compare import render_comparison
    from gatewaybench.report.data import load_run
    from gatewaybench.report.render import render_run
    from gatewaybench.results.rundir import utc_stamp

    for run_dir in run_dirs:
        load_run(run_dir)  # every directory is checked before anything is written
    for run_dir in run_dirs:
        for path in render_run(run_dir):
            print(path)
    if len(run_dirs) > 1:
        target = out or run_dirs[0].resolve().parent / f"compare-{utc_stamp()}"
        for path in render_comparison(list(run_dirs), target):
            print(path)
    return 0


def _compare(base: Path, cand: Path, out: Path | None) -> int:
    from gatewaybench.gate.runs import write_comparison
    from gatewaybench.report.data import load_run
    from gatewaybench.results.rundir import utc_stamp

    for run_dir in (base, cand):
        load_run(run_dir)  # both are checked before anything is written
    target = out or cand.resolve().parent / f"compare-{utc_stamp()}"
    code, paths = write_comparison(base, cand, target)
    print((target / "verdict.md").read_text())
    for path in paths:
        print(path)
    return code


def _terminated(_signum: int, _frame: object) -> None:
    raise SystemExit(143)  # 128 + SIGTERM, as a shell reports it


def main(argv: Sequence[str] | None = None) -> int:
    # Until `run` installs its own handlers (which tear the stack down), SIGTERM just exits
    # cleanly; nothing has been started yet. SIGINT already raises KeyboardInterrupt.
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        return _dispatch(argv)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _dispatch(argv: Sequence[str] | None) -> int:
    try:
        return _command(build_parser(dict(os.environ)).parse_args(argv))
    except GatewaybenchError as exc:
        print(f"gatewaybench: {exc.one_line()}", file=sys.stderr)
        if exc.detail:
            print(exc.detail, file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


def _command(args: argparse.Namespace) -> int:
    if args.command == "run":
        return _run(args)
    if args.command == compose_cli.COMMAND:
        return compose_cli.dispatch(args)
    if args.command == "report":
        return _report(args.run_dirs, args.out)
    if args.command == "compare":
        return _compare(args.base, args.cand, args.out)
    if args.command == "gate":
        return _gate(args)
    from gatewaybench.doctor import run_doctor

    return run_doctor(sys.stdout)


def _run(args: argparse.Namespace) -> int:
    spec = spec_from_args(args)
    from gatewaybench.runner import run_bench

    if args.backend == "compose":
        from gatewaybench.compose.backend import ComposeBackend

        return run_bench(spec, backend_for=ComposeBackend.create)
    return run_bench(spec)
