"""Interrupt real runs at random moments and count what they leave behind.

Each round starts a small bench (one server, two steps), sends SIGINT or SIGTERM after a
random delay that can land in any phase (preflight, postgres, migrate, server start, a step,
the drain, the report), waits for the harness to exit and then counts leftovers: processes
carrying the run's GATEWAYBENCH_RUN_DIR, listeners on the run's ports, temp dirs tagged with
the harness's pid, and new PostgreSQL shared-memory segments (/dev/shm and SysV). Loopback only.

    .venv/bin/python scripts/interrupt_soak.py [--rounds 20] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
BENCH = ["--servers", "uvicorn", "--users", "4,8", "--ramp", "1", "--warmup", "1",
         "--window", "3"]  # fmt: skip
MAX_DELAY_S = 20.0  # about the length of one such run: delays cover every phase


def shm_state() -> set[str]:
    # PostgreSQL's dynamic shared memory lives in /dev/shm; we only list it.
    names = {p.name for p in Path("/dev/shm").glob("PostgreSQL.*")}  # noqa: S108
    out = subprocess.run(["ipcs", "-m"], capture_output=True, text=True, check=False).stdout
    return names | {line.split()[1] for line in out.splitlines() if line[:2] == "0x"}


def leftovers(run_dir: Path | None, harness_pid: int, shm_before: set[str]) -> list[str]:
    found = []
    marker = str(run_dir) if run_dir else None
    ports = set()
    if run_dir and (run_dir / "manifest.json").is_file():
        ports = set(
            json.loads((run_dir / "manifest.json").read_text())["resolved"]["ports"].values()
        )
    for proc in psutil.process_iter(["status"]):
        try:
            if (
                marker
                and proc.info["status"] != psutil.STATUS_ZOMBIE
                and any(marker in v for v in proc.environ().values())
            ):
                found.append(f"process {proc.pid} {proc.name()}")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    for conn in psutil.net_connections("inet"):
        port = getattr(conn.laddr, "port", None)  # laddr is () for some sockets
        if conn.status == psutil.CONN_LISTEN and port in ports:
            found.append(f"listener on port {port}")
    found += [
        f"temp dir {p}" for p in Path(tempfile.gettempdir()).glob(f"gatewaybench-*-{harness_pid}-*")
    ]
    found += [f"shared memory {name}" for name in shm_state() - shm_before]
    return found


def one_round(reports: Path, delay: float, sig: int) -> tuple[str, int | None, list[str]]:
    shm_before = shm_state()
    before = set(reports.glob("*-soak*"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "gatewaybench", "run", *BENCH, "--reports-dir", str(reports),
         "--label", "soak"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(delay)
    if proc.poll() is None:
        proc.send_signal(sig)
    code = proc.wait(timeout=180)
    new = sorted(set(reports.glob("*-soak*")) - before)
    run_dir = new[0] if new else None
    time.sleep(1.0)  # let the kernel finish reaping what the harness stopped
    status = "no run dir (stopped before it was created)"
    if run_dir:
        status = json.loads((run_dir / "manifest.json").read_text())["status"]
    return status, code, leftovers(run_dir, proc.pid, shm_before)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    reports = Path(tempfile.mkdtemp(prefix="soak-reports-"))
    clean = 0
    for n in range(1, args.rounds + 1):
        delay = rng.uniform(0.2, MAX_DELAY_S)
        sig = rng.choice([signal.SIGINT, signal.SIGTERM])
        status, code, left = one_round(reports, delay, sig)
        clean += not left
        name = signal.Signals(sig).name
        print(
            f"round {n:2}: {name} after {delay:5.1f} s -> exit {code}, manifest {status}; "
            f"leftovers: {len(left)} {'; '.join(left)}",
            flush=True,
        )
    print(f"\n{clean}/{args.rounds} rounds left nothing behind (reports in {reports})")
    return 0 if clean == args.rounds else 1


if __name__ == "__main__":
    raise SystemExit(main())
