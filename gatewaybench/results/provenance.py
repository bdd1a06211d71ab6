"""Where a run came from: exact versions, the machine, the git commit."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
BASE_PACKAGES = ("django", "locust", "psycopg2-binary")
PSYCOPG3_PACKAGES = ("psycopg", "psycopg-binary", "psycopg-pool")


def package_versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    """Every server's pinned version (from the registry), and psycopg 3's from its own dir."""
    from gatewaybench.servers import REGISTRY
    from gatewaybench.stack.app import psycopg3_dir

    servers = tuple(dict.fromkeys(p for s in REGISTRY.values() for p in s.packages))
    out = {"python": platform.python_version()}
    for name in (*BASE_PACKAGES, *servers, *extra):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    found = {
        d.metadata["Name"].lower(): d.version
        for d in importlib.metadata.distributions(path=[str(psycopg3_dir())])
    }
    for name in PSYCOPG3_PACKAGES:
        out[f"{name} (psycopg3 cells)"] = found.get(name, "not installed")
    return out


def machine() -> dict[str, Any]:
    mem_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    return {
        "hostname": platform.node(),
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "platform": platform.platform(),
        "cpu_model": _cpu_model(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_info() -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args],
                cwd=REPO_ROOT,
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except OSError:
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}
