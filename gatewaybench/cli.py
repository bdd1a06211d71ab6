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
from pathlib import Path
from typing import NoReturn

from gatewaybench.errors import GatewaybenchError, UsageError
from gatewaybench.spec import (
    DjangoSettings,
    LoadSettings,
    NginxSettings,
    PostgresSettings,
    RunSpec,
    Thresholds,
    parse_servers,
    parse_steps,
    validate,
)

ENV_PREFIX = "GATEWAYBENCH_"


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}", f"see `{self.prog} --help`")


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def _processes(text: str) -> int:
    """A positive count, or 'auto' (0): scale Locust's processes with its CPU use."""
    return 0 if text == "auto" else _int(text)


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    d, ld, nd, pd = RunSpec(), LoadSettings(), NginxSettings(), PostgresSettings()
    td = Thresholds()
    dd = DjangoSettings()
    add = p.add_argument
    add(
        "--servers", type=parse_servers, default=d.servers, help="comma list (default: %(default)s)"
    )
    add(
        "--users",
        type=parse_steps,
        default=ld.users,
        help="user steps: 100,200,300 or start:stop:step (default: 100:700:100)",
    )
    add(
        "--workers",
        type=_int,
        default=d.workers,
        help="worker processes per server (default: cores)",
    )
    add("--ramp", type=_float, default=ld.ramp_s, help="seconds to spawn a step's users")
    add("--warmup", type=_float, default=ld.warmup_s, help="seconds after spawning, excluded")
    add("--window", type=_int, default=ld.window_s, help="steady-state window, whole seconds")
    add("--client-timeout", type=_float, default=ld.client_timeout_s, help="seconds per request")
    add(
        "--stop-timeout",
        type=_float,
        default=ld.stop_timeout_s,
        help="seconds in-flight requests get to finish when a step ends",
    )
    add(
        "--processes",
        type=_processes,
        default=ld.processes,
        help="Locust processes (master + workers), or 'auto' to add them as the generator loads",
    )
    add("--slo-ms", type=_float, default=td.slo_ms, help="p95 limit for capacity; slow_pct line")
    add(
        "--capacity-fail-pct",
        type=_float,
        default=td.fail_pct,
        help="failure %% limit for capacity",
    )
    add("--repeat", type=_int, default=d.repeat, help="run the matrix N times, servers interleaved")
    add("--label", default=d.label, help="suffix of the run directory name")
    add("--reports-dir", type=Path, default=d.reports_dir, help="where run directories go")
    add("--nginx-worker-processes", default=nd.worker_processes)
    add("--nginx-worker-connections", type=_int, default=nd.worker_connections)
    add("--nginx-backlog", type=_int, default=nd.listen_backlog)
    add("--nginx-port", type=_int, default=nd.port, help="0: a free port")
    add("--no-access-log", action="store_true", help="turn nginx's access log off")
    add("--pg-max-connections", type=_int, default=pd.max_connections)
    add("--pg-port", type=_int, default=pd.port, help="0: a free port")
    add("--app-port", type=_int, default=d.app_port, help="0: a free port")
    add("--conn-max-age", type=_int, default=dd.conn_max_age, help="Django CONN_MAX_AGE seconds")
    add("--questions", type=_int, default=dd.questions, help="polls seeded")
    add("--choices", type=_int, default=dd.choices, help="choices per poll")


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
    _apply_env_defaults(run, environ)
    report = sub.add_parser("report", help="render report.html, summary.md and results.json")
    report.add_argument("run_dirs", nargs="+", type=Path)
    report.add_argument("--out", type=Path, help="where a comparison of several runs goes")
    sub.add_parser("doctor", help="check this machine can run a bench")
    return parser


def spec_from_args(a: argparse.Namespace) -> RunSpec:
    load = LoadSettings(
        users=a.users,
        ramp_s=a.ramp,
        warmup_s=a.warmup,
        window_s=a.window,
        client_timeout_s=a.client_timeout,
        stop_timeout_s=a.stop_timeout,
        processes=a.processes,
    )
    spec = RunSpec(
        servers=a.servers,
        workers=a.workers,
        label=a.label,
        reports_dir=a.reports_dir,
        load=load,
        nginx=NginxSettings(
            worker_processes=a.nginx_worker_processes,
            worker_connections=a.nginx_worker_connections,
            listen_backlog=a.nginx_backlog,
            port=a.nginx_port,
            access_log=not a.no_access_log,
        ),
        postgres=PostgresSettings(max_connections=a.pg_max_connections, port=a.pg_port),
        django=DjangoSettings(
            conn_max_age=a.conn_max_age, questions=a.questions, choices=a.choices
        ),
        app_port=a.app_port,
        thresholds=Thresholds(slo_ms=a.slo_ms, fail_pct=a.capacity_fail_pct),
        repeat=a.repeat,
    )
    return validate(spec)


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
        args = build_parser(dict(os.environ)).parse_args(argv)
        if args.command == "run":
            from gatewaybench.runner import run_bench

            return run_bench(spec_from_args(args))
        if args.command == "report":
            return _report(args.run_dirs, args.out)
        from gatewaybench.doctor import run_doctor

        return run_doctor(sys.stdout)
    except GatewaybenchError as exc:
        print(f"gatewaybench: {exc.one_line()}", file=sys.stderr)
        if exc.detail:
            print(exc.detail, file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
