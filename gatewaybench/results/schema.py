"""The schema versions of what a run directory holds, checked wherever it is read.

manifest.json's schema_version is the run directory's: it covers manifest.json, steps.csv,
failures.csv and resources.csv. A field or column added within a version reads as missing in
older runs (read_steps fills columns, readers use defaults), so adding one needs no new
version; removing, renaming or changing the meaning of one does, and then the readers either
migrate the older version (and their tests say so) or refuse it.

A file without schema_version reads as version 1: the harness has written version 1 since its
first commit, so such a file is a hand-made or trimmed copy of that layout.

A refusal is one line naming the file, its version, the versions this gatewaybench reads and
the fix.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gatewaybench.errors import UsageError

SCHEMA_VERSION = 1  # the run directory's, written into manifest.json
READABLE = range(1, SCHEMA_VERSION + 1)  # the run directories this code reads
MANIFEST = "manifest.json"
UNVERSIONED = 1  # what a file without schema_version is read as (see above)


def schema_problem(what: str, data: Mapping[str, Any], readable: range) -> str | None:
    """Why `what` (its parsed content: `data`) cannot be read by code reading `readable`
    versions, or None when it can."""
    version = _version(data)
    if version is None:
        return f"{what} has schema_version {data['schema_version']!r}, not a version number"
    reads = _versions(readable)
    if version > readable[-1]:
        return f"{what} has schema_version {version}, newer than this gatewaybench reads ({reads})"
    if version < readable[0]:
        return f"{what} has schema_version {version}, older than this gatewaybench reads ({reads})"
    return None


def _version(data: Mapping[str, Any]) -> int | None:
    """The file's schema version; None when what it says is not one."""
    version = data.get("schema_version", UNVERSIONED)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        return None
    return version


def _versions(readable: range) -> str:
    first, last = readable[0], readable[-1]
    return f"version {first}" if first == last else f"versions {first} to {last}"


def read_manifest(run_dir: Path) -> dict[str, Any]:
    """A run directory's manifest.json, or a one-line UsageError saying why it cannot be read:
    missing, malformed, or of a schema version this gatewaybench does not read."""
    path = run_dir / MANIFEST
    if not path.is_file():
        raise UsageError(
            f"{run_dir} is not a run directory (no {MANIFEST})",
            "pass a directory under reports/, e.g. reports/latest",
        )
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(
            f"{run_dir} has a malformed {MANIFEST} ({type(exc).__name__})",
            "re-run the bench or restore the file",
        ) from None
    if not isinstance(manifest, dict):
        raise UsageError(
            f"{run_dir} has a malformed {MANIFEST} (not an object)",
            "re-run the bench or restore the file",
        )
    problem = schema_problem(str(path), manifest, READABLE)
    if problem is not None:
        raise UsageError(problem, _fix(manifest))
    return manifest


def _fix(manifest: Mapping[str, Any]) -> str:
    """Newer: update this gatewaybench; older: read it with the one that wrote it, whose commit
    the manifest names."""
    git = manifest.get("git")
    commit = git.get("commit") if isinstance(git, dict) else None
    made_at = f" (the run was made at commit {str(commit)[:12]})" if commit else ""
    version = _version(manifest)
    if version is None:
        return f"restore {MANIFEST} or re-run the bench"
    if version > READABLE[-1]:
        return f"update gatewaybench (git pull && make install){made_at}"
    return f"read it with the gatewaybench that wrote it{made_at}, or re-run the bench"
