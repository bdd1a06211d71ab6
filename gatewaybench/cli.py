"""Command line: the one place argv and the environment are read.

Every option of `run`, `gate` and `compose render` may also come from GATEWAYBENCH_<OPTION>
(e.g. GATEWAYBENCH_USERS=10,20, GATEWAYBENCH_BASE=origin/main); the command line wins. The
environment is read once, in main, and handed down: child processes start from it.
Errors a user can cause end in one line and exit code 2.
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import sys
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

from gatewaybench.compose import cli as compose_cli
from gatewaybench.config import build_spec
from gatewaybench.errors import GatewaybenchError, UsageError
from gatewaybench.flags import FLAGS_BY_DEST, RUN_FLAGS
from gatewaybench.progress import MODES, PLAIN_INTERVAL_S, choose_mode
from gatewaybench.spec import RunSpec

ENV_PREFIX = "GATEWAYBENCH_"


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # The program's name is main's prefix; the command's is in the fix.
        raise UsageError(message, f"see `{self.prog} --help`")


class EnvValue(str):
    """A default from GATEWAYBENCH_<OPTION>: argparse converts it like a command-line value
    (and only for the command run), and a bad one is reported by its variable's name."""

    variable: str

    def __new__(cls, text: str, variable: str) -> EnvValue:
        value = super().__new__(cls, text)
        value.variable = variable
        return value


def env_name(option: str) -> str:
    """--reports-dir -> GATEWAYBENCH_REPORTS_DIR."""
    return ENV_PREFIX + option.removeprefix("--").upper().replace("-", "_")


def _env_backed(
    p: argparse.ArgumentParser, environ: Mapping[str, str], dests: Container[str] | None = None
) -> None:
    """Every long option (of `dests`; default all) names its variable in its help and takes
    the variable, when set and not empty, as its default; the command line still wins."""
    for action in p._actions:
        option = next((o for o in action.option_strings if o.startswith("--")), None)
        if option is None or option == "--help" or (dests is not None and action.dest not in dests):
            continue
        name = env_name(option)
        action.help = f"{action.help} [env {name}]" if action.help else f"[env {name}]"
        if environ.get(name, "") != "":
            action.default = EnvValue(environ[name], name)
            action.type = _env_checked(action)
            action.required = False  # e.g. gate's --base and --cand


def _env_checked(action: argparse.Action) -> Callable[[str], Any]:
    """The option's converter, which names the variable when the value came from it."""
    switch = isinstance(action, argparse._StoreTrueAction)
    convert: Callable[[str], Any] = action.type or (_switch if switch else str)  # type: ignore[assignment]
    choices = action.choices

    @functools.wraps(convert)
    def parse(text: str) -> Any:
        if not isinstance(text, EnvValue):
            return convert(text)  # from the command line: argparse reports it as ever
        try:
            value = convert(text)
        except UsageError as exc:
            raise UsageError(f"{text.variable}: {exc.problem}", exc.fix) from None
        except (argparse.ArgumentTypeError, ValueError) as exc:
            raise UsageError(f"{text.variable}: {exc}", f"fix or unset {text.variable}") from None
        if choices is not None and value not in choices:
            raise UsageError(
                f"{text.variable}={text!r} is not one of {', '.join(map(str, choices))}",
                f"fix or unset {text.variable}",
            )
        return value

    return parse


def _switch(text: str) -> bool:
    """A switch's variable: 1/true/yes/on or 0/false/no/off."""
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not 1, true, yes, on, 0, false, no or off")


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    # No defaults here: an absent flag is None, so a preset or config file can supply it.
    for f in RUN_FLAGS:
        if f.convert is None:
            p.add_argument(f.flag, action="store_true", default=None, help=f.help)
        else:
            p.add_argument(f.flag, type=f.convert, default=None, help=f.help)


def _add_progress_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--progress",
        choices=MODES,
        default="auto",
        help="where the run is, on stderr: rich (redrawn in place), plain (a line every "
        f"{PLAIN_INTERVAL_S:g} s at most) or off; auto (default): rich on a terminal, plain "
        "in CI (CI set) or when stderr is not a terminal",
    )


# Options that are not `run` settings: the spec never sees them.
NOT_SPEC = ("command", "backend", "progress")
GATE_ONLY = ("base", "cand", "design", "pairs", "pin", "blocks", "no_rerun", "regress_pct",
             "warn_pct", "on_inconclusive")  # fmt: skip


def _add_run(sub: Any) -> argparse.ArgumentParser:
    run: argparse.ArgumentParser = sub.add_parser("run", help="run the benchmark matrix")
    _add_run_flags(run)
    run.add_argument(
        "--backend",
        choices=("local", "compose"),
        default=None,
        help="local processes (default) or Docker containers via the docker SDK",
    )
    _add_progress_flag(run)
    return run


def _add_gate(sub: Any) -> argparse.ArgumentParser:
    gate: argparse.ArgumentParser = sub.add_parser(
        "gate",
        help="base vs candidate in one job, at once: exit 0 pass, 1 regression, 3 inconclusive",
    )
    gate.add_argument("--base", required=True, help="'.', a .toml config, env:VENV or a git ref")
    gate.add_argument("--cand", required=True, help="'.', a .toml config, env:VENV or a git ref")
    gate.add_argument("--design", choices=("duet", "sequential"), default=None,
                      help="duet: both sides at once (default); sequential: one side at a "
                      "time, A B B A")  # fmt: skip
    gate.add_argument("--pairs", type=_positive_int, default=None, help="duet trials (8)")
    gate.add_argument("--pin", choices=("none", "app", "side"), default=None,
                      help="duet: what of each side runs on a core of its own: nothing "
                      "(default: the least noise here), its app server, or its app server, "
                      "nginx and generator")  # fmt: skip
    gate.add_argument("--blocks", type=_positive_int, default=None,
                      help="sequential: A B B A blocks (4)")  # fmt: skip
    gate.add_argument(
        "--on-inconclusive",
        choices=("fail", "warn"),
        default=None,
        help="fail (exit 3, default) or warn (exit 0, the reason in the summary)",
    )
    gate.add_argument("--no-rerun", action="store_true", help="no automatic re-run")
    gate.add_argument("--regress-pct", type=_positive_float, default=None,
                      help="threshold (duet 5, sequential 10)")  # fmt: skip
    gate.add_argument("--warn-pct", type=_positive_float, default=None,
                      help="warn from (duet 2.5, sequential 5)")  # fmt: skip
    _add_run_flags(gate)
    _add_progress_flag(gate)
    return gate


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


def _gate(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from gatewaybench.gate.duet import Pinning
    from gatewaybench.gate.run import DEFAULT_BLOCKS, DEFAULT_PAIRS, GateOptions, run_gate
    from gatewaybench.gate.verdict import DESIGN_THRESHOLDS, Design

    flags = {k: v for k, v in vars(args).items()
             if k not in (*NOT_SPEC, *GATE_ONLY) and v is not None}  # fmt: skip
    flags.setdefault("servers", ("gunicorn",))
    design = Design(args.design or Design.DUET)
    defaults = DESIGN_THRESHOLDS[design]
    thresholds = replace(
        defaults,
        regress_pct=args.regress_pct or defaults.regress_pct,
        warn_pct=args.warn_pct or defaults.warn_pct,
    )
    _check_design_counts(args)
    summary = environ.get("GITHUB_STEP_SUMMARY", "")  # GitHub Actions' job summary file
    options = GateOptions(
        args.base,
        args.cand,
        flags,
        blocks=args.blocks or DEFAULT_BLOCKS,
        pairs=args.pairs or DEFAULT_PAIRS,
        design=design,
        pinning=Pinning(args.pin or Pinning.NONE),
        thresholds=thresholds,
        rerun=not args.no_rerun,
        step_summary=Path(summary) if summary else None,
        inconclusive_fails=(args.on_inconclusive or "fail") == "fail",
    )
    return run_gate(options, environ, progress=_progress_mode(args.progress, environ))


def _check_design_counts(args: argparse.Namespace) -> None:
    """--pairs counts duet trials and --blocks A B B A blocks: each only with its design."""
    design = args.design or "duet"
    wrong = {"duet": ("blocks", "--pairs"), "sequential": ("pairs", "--blocks")}[design]
    if getattr(args, wrong[0]) is not None:
        raise UsageError(
            f"gate --{wrong[0]} does not apply to --design {design}",
            f"give {wrong[1]} for it, or choose the other --design",
        )
    if design == "sequential" and args.pin is not None:
        raise UsageError(
            "gate --pin applies to --design duet only", "leave --pin out, or use --design duet"
        )


def _progress_mode(requested: str, environ: Mapping[str, str]) -> str:
    ci = environ.get("CI", "").lower() not in ("", "0", "false")
    return choose_mode(requested, terminal=sys.stderr.isatty(), ci=ci)


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = OneLineParser(prog="gatewaybench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    _env_backed(_add_run(sub), environ)
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
    _env_backed(_add_gate(sub), environ)
    sub.add_parser("doctor", help="check this machine can run a bench")
    _env_backed(compose_cli.add_subcommand(sub), environ, FLAGS_BY_DEST)
    return parser


def parse_args(argv: Sequence[str] | None, environ: Mapping[str, str]) -> argparse.Namespace:
    """The arguments; an unknown one is reported by the command it was given to."""
    parser = build_parser(environ)
    args, extras = parser.parse_known_args(argv)
    if extras:
        _chosen(parser, args).error(f"unrecognized arguments: {' '.join(extras)}")
    return args


def _chosen(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The (sub)command's parser the arguments ran into, e.g. `gatewaybench compose render`."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            chosen = action.choices.get(getattr(args, action.dest, None) or "")
            if chosen is not None:
                return _chosen(chosen, args)
    return parser


def spec_from_args(a: argparse.Namespace) -> RunSpec:
    """Flags (and GATEWAYBENCH_* variables) over the config file over the preset."""
    given = {k: v for k, v in vars(a).items() if k not in NOT_SPEC and v is not None}
    return build_spec(given)


def _report(run_dirs: Sequence[Path], out: Path | None) -> int:
    """Render each run's report; with several runs, the multi-run report as well."""
    from gatewaybench.report.data import load_run
    from gatewaybench.report.multirun import render_multirun
    from gatewaybench.report.render import render_run
    from gatewaybench.results.rundir import utc_stamp

    for run_dir in run_dirs:
        load_run(run_dir)  # every directory is checked before anything is written
    for run_dir in run_dirs:
        for path in render_run(run_dir):
            print(path)
    if len(run_dirs) > 1:
        out_dir = out or run_dirs[0].resolve().parent / f"compare-{utc_stamp()}"
        for path in render_multirun(list(run_dirs), out_dir):
            print(path)
    return 0


def _compare(base: Path, cand: Path, out: Path | None) -> int:
    from gatewaybench.gate.compare import write_comparison
    from gatewaybench.report.data import load_run
    from gatewaybench.results.rundir import utc_stamp

    for run_dir in (base, cand):
        load_run(run_dir)  # both are checked before anything is written
    out_dir = out or cand.resolve().parent / f"compare-{utc_stamp()}"
    code, paths = write_comparison(base, cand, out_dir)
    print((out_dir / "verdict.md").read_text())
    for path in paths:
        print(path)
    return code


def _terminated(_signum: int, _frame: object) -> None:
    raise SystemExit(143)  # 128 + SIGTERM, as a shell reports it


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """`environ`: this process's environment unless given (tests give their own)."""
    # Read once, here: everything below gets it handed down and never touches os.environ.
    environ = dict(os.environ if environ is None else environ)
    # Until `run` installs its own handlers (which tear the stack down), SIGTERM just exits
    # cleanly; nothing has been started yet. SIGINT already raises KeyboardInterrupt.
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        return _dispatch(argv, environ)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _dispatch(argv: Sequence[str] | None, environ: Mapping[str, str]) -> int:
    try:
        return _command(parse_args(argv, environ), environ)
    except GatewaybenchError as exc:
        print(f"gatewaybench: {exc.one_line()}", file=sys.stderr)
        if exc.detail:
            print(exc.detail, file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


def _command(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    if args.command == "run":
        return _run(args, environ)
    if args.command == compose_cli.COMMAND:
        return compose_cli.dispatch(args)
    if args.command == "report":
        return _report(args.run_dirs, args.out)
    if args.command == "compare":
        return _compare(args.base, args.cand, args.out)
    if args.command == "gate":
        return _gate(args, environ)
    from gatewaybench.doctor import run_doctor

    return run_doctor(sys.stdout)


def _run(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    spec = spec_from_args(args)
    from gatewaybench.runner import run_bench

    progress = _progress_mode(args.progress, environ)
    if args.backend == "compose":
        from gatewaybench.compose.backend import ComposeBackend

        return run_bench(
            spec,
            environ,
            backend_for=lambda s: ComposeBackend.create(s, environ),
            progress=progress,
        )
    return run_bench(spec, environ, progress=progress)
