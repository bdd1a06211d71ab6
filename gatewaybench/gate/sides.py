"""The two sides of a gate: what `--base` and `--cand` name, resolved to runnable code.

A side is one of:
- `.` — this checkout as it is;
- a `.toml` config file — this checkout with those settings (e.g. `cpu-work-ms = 2`);
- `env:PATH` — this checkout's app served from another Python environment (a virtualenv);
- a git ref (branch, tag, commit, `origin/main`, `HEAD~1`) — that commit's sample app in its
  own worktree, on its own environment built with its own `make install` (its own pins); when
  its pins are this checkout's exactly, on this checkout's environment (the same packages,
  installed once: a pull request that changes code only costs no install).
The measuring harness is always this checkout's: only what is measured differs.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from gatewaybench.config import build_spec
from gatewaybench.errors import UsageError
from gatewaybench.results.stale import temp_prefix
from gatewaybench.spec import RunSpec
from gatewaybench.stack.app import SAMPLE_APP_DIR

REPO = SAMPLE_APP_DIR.parent
BUILD_TIMEOUT_S = 900


@dataclass(frozen=True)
class Side:
    name: str  # "base" or "cand"
    given: str  # what the user wrote
    kind: str  # "tree", "config", "env" or "git"
    spec: RunSpec
    sample_root: Path  # the sample app this side serves
    python: Path  # the interpreter whose bin directory has the servers
    commit: str = ""

    def describe(self) -> dict[str, Any]:
        return {
            "given": self.given,
            "kind": self.kind,
            "commit": self.commit,
            "sample_app": str(self.sample_root),
            "python": str(self.python),
            "django": self.spec.to_json()["django"],
        }


def _git(*args: str, environ: Mapping[str, str], cwd: Path = REPO) -> str:
    out = subprocess.run(
        ["git", *args], cwd=cwd, env=environ, capture_output=True, text=True, check=False,
        timeout=120,
    )  # fmt: skip
    if out.returncode != 0:
        raise UsageError(f"git {' '.join(args)} failed: {out.stderr.strip()}", "check the ref")
    return out.stdout.strip()


def _is_commit(ref: str, environ: Mapping[str, str]) -> str:
    out = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
        cwd=REPO, env=environ, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    return out.stdout.strip() if out.returncode == 0 else ""


@contextmanager
def resolved_side(
    name: str, given: str, flags: dict[str, Any], log: TextIO, environ: Mapping[str, str]
) -> Iterator[Side]:
    """The side, ready to run; a git side's worktree is removed when the gate ends. `environ`:
    what git and a side's `make install` start from (the CLI's)."""
    text = given.strip()
    if text in (".", ""):
        yield Side(name, given, "tree", build_spec(flags), SAMPLE_APP_DIR, Path(sys.executable))
    elif text.endswith(".toml") or Path(text).is_file():
        spec = build_spec({**flags, "config": Path(text)})
        yield Side(name, given, "config", spec, SAMPLE_APP_DIR, Path(sys.executable))
    elif text.startswith("env:"):
        python = Path(text[4:]).expanduser().absolute() / "bin" / "python"
        if not python.exists():
            raise UsageError(f"{name} side {given!r}: {python} does not exist", "give a venv")
        yield Side(name, given, "env", build_spec(flags), SAMPLE_APP_DIR, python)
    else:
        commit = _is_commit(text, environ)
        if not commit:
            raise UsageError(
                f"{name} side {given!r} is not '.', a .toml file, env:PATH or a git ref",
                "see `gatewaybench gate --help`",
            )
        with _worktree(commit, environ) as root:
            python = _environment(root, commit, log, environ)
            spec = build_spec(flags)
            yield Side(name, given, "git", spec, root / "sample_app", python, commit)


@contextmanager
def _worktree(commit: str, environ: Mapping[str, str]) -> Iterator[Path]:
    parent = Path(tempfile.mkdtemp(prefix=temp_prefix("gate")))
    root = parent / commit[:12]
    _git("worktree", "add", "--detach", str(root), commit, environ=environ)
    try:
        yield root
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(root)], cwd=REPO,
                       env=environ, capture_output=True, check=False, timeout=120)  # fmt: skip
        subprocess.run(["rm", "-rf", str(parent)], env=environ, check=False, timeout=120)


# What decides the packages a side's servers run on (see the Makefile's install).
PIN_FILES = ("pyproject.toml", "envs/psycopg3.txt")


def same_pins(root: Path, here: Path = REPO) -> bool:
    """The worktree pins exactly this checkout's packages (dependencies and psycopg 3)."""
    for rel in PIN_FILES:
        theirs, ours = root / rel, here / rel
        if not (theirs.is_file() and ours.is_file()):
            return False
        if rel == "pyproject.toml":
            if _dependencies(theirs) != _dependencies(ours):
                return False
        elif theirs.read_text() != ours.read_text():
            return False
    return True


def _dependencies(pyproject: Path) -> list[str]:
    project = tomllib.loads(pyproject.read_text()).get("project", {})
    return list(project.get("dependencies", []))


def _environment(root: Path, commit: str, log: TextIO, environ: Mapping[str, str]) -> Path:
    """The interpreter of the side's environment: this one when the pins are the same,
    else the worktree's own `make install`."""
    if same_pins(root):
        print(f"gatewaybench: {commit[:12]} pins this checkout's packages: its sample app runs "
              f"on this environment ({sys.prefix})", file=log)  # fmt: skip
        return Path(sys.executable)
    print(f"gatewaybench: building {commit[:12]} in {root} (its own make install)", file=log)
    build = subprocess.run(
        ["make", "-C", str(root), "install"], env=environ, capture_output=True, text=True,
        check=False, timeout=BUILD_TIMEOUT_S,
    )  # fmt: skip
    if build.returncode != 0:
        raise UsageError(
            f"`make install` failed in the worktree of {commit[:12]}: "
            f"{(build.stderr or build.stdout).strip().splitlines()[-1:]}",
            "check that the ref builds on its own",
        )
    return root / ".venv" / "bin" / "python"
