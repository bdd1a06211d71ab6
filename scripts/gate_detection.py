"""How well does the gate tell a 10 %-slower candidate from no change? (a benchmark, not a test)

    .venv/bin/python scripts/gate_detection.py --k 10 --slowdown-pct 10

1. Calibrates the slowdown on this machine: one short run above the knee gives the whole
   stack's CPU per request (app server + PostgreSQL + nginx) at the plateau; a candidate that
   adds (1/(1 - s) - 1) times that much CPU work per request (GB_CPU_WORK_MS) serves s fewer
   requests per second at the plateau — "s % slower".
2. Runs the gate K times base-vs-base and K times base-vs-slower, interleaved so drift of the
   machine hits both alike, and prints the detection rate (exit 1 on the slower candidate),
   the false-alarm rate (exit 1 on no change), the inconclusive counts and the gate times.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run(argv: list[str]) -> tuple[int, str, str]:
    out = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False)
    return out.returncode, out.stdout, out.stderr


def stack_cpu_ms_per_request(server: str, users: int, reports: Path) -> float:
    code, text, err = _run([sys.executable, "-m", "gatewaybench", "run", "--servers", server,
                       "--users", str(users), "--ramp", "2", "--warmup", "3", "--window", "15",
                       "--reports-dir", str(reports), "--label", "calibrate-slowdown"])  # fmt: skip
    run_dir = Path(text.strip().splitlines()[-1]) if code in (0, 1) else None
    if run_dir is None or not (run_dir / "resources.csv").exists():
        raise SystemExit(f"calibration run failed:\n{err[-2000:]}")
    with (run_dir / "steps.csv").open() as fh:
        rps = float(next(csv.DictReader(fh))["ok_rps"])
    with (run_dir / "resources.csv").open() as fh:
        cpu = sum(float(r["cpu_pct"]) for r in csv.DictReader(fh)
                  if r["component"] in ("app", "postgres", "nginx"))  # fmt: skip
    return cpu * 10 / rps


def gate(cand: str, server: str, reports: Path) -> tuple[int, float, str]:
    started = time.monotonic()
    code, text, _err = _run([sys.executable, "-m", "gatewaybench", "gate", "--base", ".", "--cand",
                       cand, "--servers", server, "--reports-dir", str(reports)])  # fmt: skip
    headline = next((ln for ln in text.splitlines() if ln.startswith("**")), "(no headline)")
    return code, time.monotonic() - started, headline


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--slowdown-pct", type=float, default=10.0)
    p.add_argument("--server", default="gunicorn")
    p.add_argument("--plateau-users", type=int, default=300)
    p.add_argument("--reports-dir", type=Path, default=REPO / "reports" / "gate-detection")
    a = p.parse_args()
    a.reports_dir.mkdir(parents=True, exist_ok=True)
    total = stack_cpu_ms_per_request(a.server, a.plateau_users, a.reports_dir)
    s = a.slowdown_pct / 100
    work = (1 / (1 - s) - 1) * total
    print(f"stack CPU per request at the plateau: {total:.2f} ms; {a.slowdown_pct:g} % slower "
          f"= +{work:.2f} ms of CPU work per request", flush=True)  # fmt: skip
    slower = Path(tempfile.mkdtemp()) / "slower.toml"
    slower.write_text(f"cpu-work-ms = {work:.3f}\n")
    outcomes: dict[str, list[tuple[int, float, str]]] = {"same": [], "slower": []}
    for i in range(a.k):
        for name, cand in (("same", "."), ("slower", str(slower))):
            result = gate(cand, a.server, a.reports_dir)
            outcomes[name].append(result)
            print(f"[{i + 1}/{a.k}] {name}: exit {result[0]} in {result[1] / 60:.1f} min "
                  f"{result[2]}", flush=True)  # fmt: skip
    summary = {name: {"regression": sum(c == 1 for c, _, _ in runs),
                      "inconclusive": sum(c == 3 for c, _, _ in runs),
                      "pass": sum(c == 0 for c, _, _ in runs),
                      "max_minutes": round(max(t for _, t, _ in runs) / 60, 1)}
               for name, runs in outcomes.items()}  # fmt: skip
    print(json.dumps({"cpu_work_ms": round(work, 3), "k": a.k, **summary}, indent=2))
    print(f"detected {summary['slower']['regression']}/{a.k}; "
          f"false alarms {summary['same']['regression']}/{a.k}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
