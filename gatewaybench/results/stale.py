"""Run directories left "running" by a harness that was killed (SIGKILL, power loss).

The children of a killed harness die with it (parent-death signal), but its run directory
still says "running" and may hold the PostgreSQL data directory. The next run in the same
reports directory finds such runs, marks them interrupted and removes what they owned. A run
whose harness is still alive (a concurrent run) is left alone: we never touch what we do not own.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import psutil

from gatewaybench.errors import UsageError
from gatewaybench.results.files import write_json
from gatewaybench.results.schema import read_manifest

OWNED_TEMP_PREFIXES = ("gatewaybench-pg-", "gatewaybench-pgdata-", "gatewaybench-nginx-")
TEMP_RE = re.compile(r"^gatewaybench-(?:pg|pgdata|nginx)-(\d+)-")


def temp_prefix(kind: str) -> str:
    """Temp dirs carry the harness's pid, so a later run can tell a dead run's leftovers."""
    return f"gatewaybench-{kind}-{os.getpid()}-"


def sweep_temp_dirs() -> list[Path]:
    """Remove our temp dirs whose harness is gone (a live or reused pid: left alone)."""
    removed = []
    for entry in Path(tempfile.gettempdir()).iterdir():
        match = TEMP_RE.match(entry.name)
        if match and entry.is_dir() and not psutil.pid_exists(int(match.group(1))):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def harness_identity() -> dict[str, Any]:
    """Pid plus start time: a pid reused by another process is not mistaken for us."""
    me = psutil.Process()
    return {"pid": me.pid, "create_time": me.create_time()}


def _alive(identity: dict[str, Any]) -> bool:
    try:
        proc = psutil.Process(int(identity["pid"]))
        return abs(proc.create_time() - float(identity["create_time"])) < 1.0
    except (psutil.NoSuchProcess, KeyError, TypeError, ValueError):
        return False


def _owned_leftovers(run_dir: Path, manifest: dict[str, Any]) -> list[Path]:
    resolved = manifest.get("resolved", {})
    paths = [run_dir / "pgdata"]
    for key in ("postgres_data_dir", "postgres_socket_dir"):
        if resolved.get(key):
            paths.append(Path(resolved[key]))
    owned = []
    for path in paths:
        inside_run = path.resolve().is_relative_to(run_dir.resolve())
        ours_in_tmp = any(part.startswith(OWNED_TEMP_PREFIXES) for part in path.parts)
        if path.exists() and (inside_run or ours_in_tmp):
            # a private temp parent (gatewaybench-pgdata-*) goes with its data directory
            owned.append(path.parent if path.parent.name.startswith(OWNED_TEMP_PREFIXES) else path)
    return owned


def recover_stale_runs(reports_dir: Path) -> list[str]:
    """Mark dead 'running' runs interrupted and delete their leftovers. Returns messages."""
    messages = [f"removed the temp dir {p} of a killed run" for p in sweep_temp_dirs()]
    if not reports_dir.is_dir():
        return messages
    for manifest_path in sorted(reports_dir.glob("*/manifest.json")):
        run_dir = manifest_path.parent
        if run_dir.is_symlink():
            continue  # reports/latest
        try:
            manifest = read_manifest(run_dir)
        except UsageError:
            continue  # unreadable, or another version's layout: not ours to clean up
        if manifest.get("status") != "running" or _alive(manifest.get("harness", {})):
            continue
        for path in _owned_leftovers(run_dir, manifest):
            shutil.rmtree(path, ignore_errors=True)
        manifest["status"] = "interrupted"
        manifest["error"] = "the harness was killed; found and cleaned up by a later run"
        manifest["recovered_utc"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        write_json(manifest_path, manifest)
        messages.append(f"{run_dir.name}: its harness was killed; marked interrupted, cleaned up")
    return messages
