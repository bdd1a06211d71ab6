"""Does the open model queue the way queueing theory says? (a proof on the real stack, not a test)

One gunicorn sync worker (1 worker, 1 thread) behind nginx, every request waiting on the
delayed upstream (--upstream-ms), is a single-server FIFO queue; Poisson arrivals of one
request each (`--model open --arrival request`) make it an M/G/1 queue. This script:

1. measures the service time S: an open step with `--max-inflight 1`, so an arrival that finds
   a request in flight is dropped, never queued, and every request measured is served alone:
   E[S] and E[S^2] from the window's latency histogram (client side: nginx's and loopback's
   share, well under 1 ms, is counted into S);
2. for each utilisation rho (default 0.3, 0.5, 0.7) offers lambda = rho / E[S] arrivals/s with
   no cap that binds, and compares the mean response time from each arrival's intended start
   with Pollaczek-Khinchine's M/G/1 mean, E[T] = E[S] + lambda E[S^2] / (2 (1 - rho));
   the p95 is set beside an approximation (stated, not judged): the wait W is 0 with
   probability 1 - rho and otherwise exponential with the mean that gives P-K's E[W], so
   p95(T) ~ E[S] + (E[W] / rho) ln(rho / 0.05);
3. runs the closed model (users thinking 1-2 s, one GET each time) at the same three
   throughputs, users = lambda (mean think + E[S]), and prints its latencies beside: what a
   closed-model benchmark would have reported at the same load.

Exit 0 when every measured mean is within --tolerance-pct (10) of the prediction, 1 when one
is not or a step was invalid (a generator running late, say), 2 on bad arguments.
Each rho runs in its own run directory, with its own window (--windows): the mean of a queue's
response times converges slowly, the slower the busier the server. Simulated with this service
time (25 ms, CV 0.15), 40 seeds each: the mean's error has a 95th percentile of 5 % at rho 0.3
in 60 s, 4 % at 0.5 in 120 s, 7 % at 0.7 in 240 s (8 % in 120; the default is 300): the 10 %
limit is left to real disagreement, not to sampling.

    .venv/bin/python scripts/validate_queueing.py [--upstream-ms 20] [--rhos 0.3,0.5,0.7]
        [--windows 60,120,300] [--closed-window 60] [--reports-dir reports/queueing]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gatewaybench.analysis.histogram import Histogram  # noqa: E402
from gatewaybench.analysis.summary import read_steps  # noqa: E402

THINK_MEAN_S = 1.5  # the closed model's think time, uniform 1-2 s (loadtests/listeners.py)
P95_TAIL = 0.05


@dataclass(frozen=True)
class Service:
    mean_ms: float
    second_moment_ms2: float
    count: int

    @property
    def cv(self) -> float:
        """The coefficient of variation (0: deterministic, 1: exponential)."""
        var = self.second_moment_ms2 - self.mean_ms**2
        return math.sqrt(max(0.0, var)) / self.mean_ms


@dataclass(frozen=True)
class Prediction:
    rho: float
    rate: float  # arrivals/s
    mean_ms: float  # Pollaczek-Khinchine
    p95_ms: float  # the approximation in the module docstring


def predict(service: Service, rho: float) -> Prediction:
    rate = rho / (service.mean_ms / 1000)
    wait_ms = (rate / 1000) * service.second_moment_ms2 / (2 * (1 - rho))
    tail_ms = (wait_ms / rho) * math.log(rho / P95_TAIL) if rho > P95_TAIL else 0.0
    return Prediction(rho, rate, service.mean_ms + wait_ms, service.mean_ms + tail_ms)


def moments(hist: Histogram) -> Service:
    """E[S] and E[S^2] in ms from a histogram of whole microseconds."""
    n = hist.total
    mean = hist.sum_us() / n / 1000
    second = sum(v * v * c for v, c in hist.counts.items()) / n / 1e6
    return Service(mean, second, n)


def bench(args: argparse.Namespace, label: str, extra: list[str]) -> Path:
    """One `gatewaybench run` of the single-worker cell; its run directory."""
    argv = [
        sys.executable, "-m", "gatewaybench", "run", "--servers", "gunicorn", "--workers", "1",
        "--threads", "1", "--upstream-ms", str(args.upstream_ms), "--arrival", "request",
        "--arrival-path", args.path, "--reports-dir", str(args.reports_dir), "--label", label,
        "--progress", "off", *extra,
    ]  # fmt: skip
    print(f"$ {' '.join(argv[1:])}", file=sys.stderr, flush=True)
    done = subprocess.run(argv, cwd=REPO, stdout=subprocess.PIPE, text=True, check=False)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise SystemExit(f"validate_queueing: {label}: gatewaybench run exited {done.returncode}")
    return Path(lines[-1])


def only_rows(run_dir: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = read_steps(run_dir).to_dict("records")
    return rows


def window_histogram(run_dir: Path) -> Histogram:
    (path,) = run_dir.glob("raw/*/r1/a*/window-histogram.json")
    return Histogram.from_json(json.loads(path.read_text())["counts"])


def measure_service(args: argparse.Namespace) -> Service:
    # Well under one request in flight on average, and at most one: nothing ever queues.
    rate = 0.25 / (args.upstream_ms / 1000)
    run_dir = bench(args, "queueing-service", [
        "--model", "open", "--rate", f"{rate:g}", "--max-inflight", "1",
        "--window", str(args.service_window),
    ])  # fmt: skip
    (row,) = only_rows(run_dir)
    if not row["valid"]:
        raise SystemExit(f"validate_queueing: the service step is invalid: {row['invalid_reason']}")
    return moments(window_histogram(run_dir))


def measure_open(args: argparse.Namespace, p: Prediction, window: int) -> dict[str, Any]:
    run_dir = bench(args, f"queueing-rho{p.rho:g}", [
        "--model", "open", "--rate", f"{p.rate:.3f}", "--window", str(window),
    ])  # fmt: skip
    (row,) = only_rows(run_dir)
    return row


def measure_closed(
    args: argparse.Namespace, service: Service, preds: list[Prediction]
) -> list[dict[str, Any]]:
    users = [max(1, round(p.rate * (THINK_MEAN_S + service.mean_ms / 1000))) for p in preds]
    run_dir = bench(args, "queueing-closed", [
        "--model", "closed", "--users", ",".join(map(str, users)),
        "--window", str(args.closed_window),
    ])  # fmt: skip
    return sorted(only_rows(run_dir), key=lambda r: int(r["users"]))


def off_pct(measured: float, predicted: float) -> float:
    return 100 * (measured - predicted) / predicted


HEADER = (
    f"{'rho':>4} {'arr/s':>6} {'req/s':>6} | {'P-K mean':>8} {'mean':>7} {'off %':>6} | "
    f"{'~p95':>6} {'p95':>6} | {'lag99':>5} {'valid':>5} || closed: {'users':>5} {'req/s':>6} "
    f"{'mean':>6} {'p95':>6}"
)


def line(p: Prediction, row: dict[str, Any], closed: dict[str, Any] | None) -> str:
    mean = float(row["intended_mean_ms"])
    text = (
        f"{p.rho:4.1f} {p.rate:6.1f} {float(row['rps']):6.1f} | {p.mean_ms:8.1f} {mean:7.1f} "
        f"{off_pct(mean, p.mean_ms):+6.1f} | {p.p95_ms:6.1f} {float(row['intended_p95_ms']):6.1f} "
        f"| {float(row['lag_p99_ms']):5.1f} {'yes' if row['valid'] else 'NO':>5} ||"
    )
    if closed is None:
        return text + " closed: (not run)"
    return text + (
        f" closed: {int(closed['users']):5d} {float(closed['rps']):6.1f} "
        f"{float(closed['mean_ms']):6.1f} {float(closed['p95_ms']):6.1f}"
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream-ms", type=int, default=20)
    parser.add_argument("--path", default="/polls/", help="the page each arrival gets")
    parser.add_argument("--rhos", default="0.3,0.5,0.7")
    parser.add_argument("--windows", default="60,120,300", help="seconds, one per rho")
    parser.add_argument("--service-window", type=int, default=40)
    parser.add_argument("--closed-window", type=int, default=60, help="0: no closed run")
    parser.add_argument("--tolerance-pct", type=float, default=10.0)
    parser.add_argument("--reports-dir", type=Path, default=REPO / "reports" / "queueing")
    args = parser.parse_args()
    args.rho_list = [float(r) for r in args.rhos.split(",")]
    args.window_list = [int(w) for w in args.windows.split(",")]
    if len(args.window_list) != len(args.rho_list) or not all(0 < r < 1 for r in args.rho_list):
        parser.error("give one window per rho, and each rho between 0 and 1")
    return args


def main() -> int:
    args = parse_args()
    service = measure_service(args)
    print(
        f"service time S (one gunicorn sync worker, upstream {args.upstream_ms} ms, GET "
        f"{args.path}, {service.count} requests served alone): E[S] = {service.mean_ms:.2f} ms, "
        f"E[S^2] = {service.second_moment_ms2:.1f} ms^2, CV = {service.cv:.2f}",
        flush=True,
    )
    preds = [predict(service, rho) for rho in args.rho_list]
    rows = [measure_open(args, p, w) for p, w in zip(preds, args.window_list, strict=True)]
    closed = measure_closed(args, service, preds) if args.closed_window else []
    print(
        "M/G/1 (Pollaczek-Khinchine) vs measured, latency from the intended start in ms; ~p95: "
        "W = 0 w.p. 1-rho, else exponential (mean from P-K); closed: users thinking 1-2 s at "
        "the same throughput, latency in ms\n" + HEADER
    )
    worst = 0.0
    for i, (p, row) in enumerate(zip(preds, rows, strict=True)):
        print(line(p, row, closed[i] if i < len(closed) else None))
        worst = max(worst, abs(off_pct(float(row["intended_mean_ms"]), p.mean_ms)))
    invalid = [f"rho {p.rho:g}: {r['invalid_reason']}" for p, r in zip(preds, rows, strict=True)
               if not r["valid"]]  # fmt: skip
    ok = worst <= args.tolerance_pct and not invalid
    verdict = "PASS" if ok else "FAIL"
    print(f"{verdict}: worst mean off by {worst:.1f} % (limit {args.tolerance_pct:g} %)"
          + (f"; invalid steps: {'; '.join(invalid)}" if invalid else ""))  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
