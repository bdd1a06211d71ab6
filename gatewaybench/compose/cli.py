"""`gatewaybench compose ...`: render the compose file from the spec, check it, make a .env.

Wired into gatewaybench/cli.py by `add_subcommand(subparsers)` and `dispatch(args)`; parses
nothing itself beyond its own arguments, and reads the environment only through cli.py's
GATEWAYBENCH_* defaults for the `run` flags of `compose render`, like `run` and `gate`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO

from gatewaybench.compose import render
from gatewaybench.compose.services import COMPOSE_WORKERS
from gatewaybench.config import build_spec
from gatewaybench.errors import UsageError
from gatewaybench.flags import RUN_FLAGS
from gatewaybench.spec import RunSpec

COMMAND = "compose"
# `run` flags that mean nothing to a compose file (where results go, host ports chosen freely).
IGNORED = {"command", "compose_command", "write", "check", "force", "path"}


def add_subcommand(subparsers: Any) -> argparse.ArgumentParser:
    """Add `compose render|env` to the top-level parser's subparsers; returns `render`'s parser
    (whose `run` flags cli.py backs with GATEWAYBENCH_* variables)."""
    compose = subparsers.add_parser(COMMAND, help="docker-compose.yml from the spec")
    sub = compose.add_subparsers(dest="compose_command", required=True)
    rend: argparse.ArgumentParser = sub.add_parser(
        "render",
        help="print docker-compose.yml for the spec (the `run` flags; default: the seed "
        f"matrix, {COMPOSE_WORKERS} workers)",
    )
    for f in RUN_FLAGS:
        if f.convert is None:
            rend.add_argument(f.flag, action="store_true", default=None, help=f.help)
        else:
            rend.add_argument(f.flag, type=f.convert, default=None, help=f.help)
    mode = rend.add_mutually_exclusive_group()
    mode.add_argument(
        "--write", action="store_true", help="write docker-compose.yml and docker/* instead"
    )
    mode.add_argument("--check", action="store_true", help="exit 1 if the committed files differ")
    env = sub.add_parser("env", help="write a .env with generated secrets (if none exists)")
    env.add_argument("--path", type=Path, default=render.REPO_ROOT / render.ENV_FILE)
    env.add_argument("--force", action="store_true", help="replace an existing file")
    return rend


def compose_spec(args: argparse.Namespace) -> RunSpec:
    """The spec `compose render` renders: the `run` flags given, else the committed defaults
    (a fixed worker count, so the committed file does not depend on this machine's cores)."""
    given = {k: v for k, v in vars(args).items() if k not in IGNORED and v is not None}
    given.setdefault("workers", COMPOSE_WORKERS)
    return build_spec(given)


def dispatch(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    if args.compose_command == "env":
        return write_env(args.path, force=args.force, out=out)
    spec = compose_spec(args)
    if args.check:
        stale = render.stale_files(spec)
        for rel in stale:
            print(
                f"{rel} differs from the spec: run `gatewaybench compose render --write`", file=out
            )
        return 1 if stale else 0
    if args.write:
        for path in render.write_files(spec):
            print(path, file=out)
        return 0
    out.write(render.compose_text(spec))
    return 0


def write_env(path: Path, *, force: bool, out: TextIO) -> int:
    if path.exists() and not force:
        print(f"{path} exists; kept (pass --force to replace its secrets)", file=out)
        return 0
    if path.parent and not path.parent.is_dir():
        raise UsageError(f"{path.parent} is not a directory", "pass --path with a writable file")
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)  # secrets: readable by their owner only
    path.write_text(render.env_file_text())
    print(path, file=out)
    return 0
