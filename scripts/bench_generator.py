"""How much does the harness's recording cost the load generator, how does Locust scale, and how
many arrivals per second does the open model hold?

Default (the closed model): runs, interleaved in rounds on the same nginx `return 200` location
(loopback only):
  A  a bare FastHttpUser locustfile, 1 process, no recording
  B  the same user with the harness's recording installed, 1 process
  C  B with --processes 2
and prints median requests/sec, the recording overhead (1 - B/A, goal <= 10 %) and the scaling
of two processes (C/B, goal >= 1.75x).

--open: the open model (loadtests/bare_open.py: one GET of /gb-ok per arrival) in one Locust
process at each of --rates arrivals/s, printing per rate the offered and achieved arrivals/s,
drops, the generator's dispatch lag, its CPU % and the service vs intended latencies (goal: 500
arrivals/s held, no drops, dispatch lag p99 < 5 ms).

--open-check: intended vs service latency on a fast target (a GET, and a polls session on
nginx's stand-in pages), on a slow one (1 s per response: limit_rate) with a large cap and with
a cap of 2 (drops, against Erlang's loss formula), and with the generator itself overloaded.

A benchmark, not a test: it reports, it does not assert.

    .venv/bin/python scripts/bench_generator.py [--seconds 15] [--users 50] [--rounds 3]
    .venv/bin/python scripts/bench_generator.py --open [--rates 250,500,750,1000]
    .venv/bin/python scripts/bench_generator.py --open-check [--seconds 10]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import shutil
import statistics
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gatewaybench.analysis.histogram import Histogram  # noqa: E402
from gatewaybench.analysis.records import PSEUDO_KEYS  # noqa: E402
from gatewaybench.analysis.series import value_at  # noqa: E402
from gatewaybench.stack import nginx, process  # noqa: E402
from gatewaybench.stack.app import bin_dir  # noqa: E402
from gatewaybench.stack.net import LOOPBACK, free_port, http_ok  # noqa: E402

# The polls stand-ins: what loadtests/pages.py's patterns read, then a vote's redirect.
POLL_FORM = (
    '<input type="hidden" name="csrfmiddlewaretoken" value="t0ken">'
    '<input type="radio" name="choice" id="choice1" value="1">'
)
SLOW_BODY_BYTES = 24 * 1024  # at limit_rate 16k, nginx takes 1.0 s to send it
NGINX_CONF = """daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/cb; proxy_temp_path {tmp}/p; fastcgi_temp_path {tmp}/f;
    uwsgi_temp_path {tmp}/u; scgi_temp_path {tmp}/s;
    server {{
        listen {listen};
        location = /gb-ok {{ return 200 "ok"; }}
        location = /gb-slow {{ root {tmp}/www; limit_rate 16k; }}
        location ~ ^/polls/[0-9]+/$ {{ default_type text/html; return 200 '{form}'; }}
        location ~ ^/polls/[0-9]+/vote/$ {{ return 302 /polls/1/results/; }}
        location ~ ^/polls/[0-9]+/results/$ {{ return 200 "results"; }}
    }}
}}
"""
Record = dict[str, Any]  # a record file's JSON (loadtests/recording.py)
VARIANTS = {
    "A bare, 1 process": ("bare.py", 1),
    "B recorded, 1 process": ("bare_recorded.py", 1),
    "C recorded, 2 processes": ("bare_recorded.py", 2),
}


def locust_argv(port: int, locustfile: str, users: int, seconds: int) -> list[str]:
    return [
        str(bin_dir() / "locust"), f"--locustfile={REPO / 'loadtests' / locustfile}",
        "--headless", f"--host=http://{LOOPBACK}:{port}", f"--users={users}",
        f"--spawn-rate={users}", f"--run-time={seconds}s", "--only-summary",
        "--loglevel=WARNING",
    ]  # fmt: skip


def run_locust(tmp: Path, tag: str, argv: list[str], env: Mapping[str, str], seconds: int) -> Path:
    """Run Locust to its end; returns its record directory."""
    records = tmp / f"{tag}-records"
    full_env = {"PATH": "/usr/bin:/bin", "GB_RECORD_DIR": str(records), **env}
    proc = process.start(tag, argv, log_path=tmp / f"{tag}.log", env=full_env)
    try:
        proc.popen.wait(timeout=seconds + 60)
    finally:
        proc.stop()
    return records


def closed_rps(tmp: Path, port: int, *, locustfile: str, processes: int,
               args: argparse.Namespace, tag: str) -> float:  # fmt: skip
    argv = [*locust_argv(port, locustfile, args.users, args.seconds), f"--csv={tmp / tag}"]
    if processes > 1:
        master = free_port()
        argv += [
            f"--processes={processes}",
            f"--master-bind-host={LOOPBACK}",
            f"--master-bind-port={master}",
            f"--master-host={LOOPBACK}",
            f"--master-port={master}",
        ]
    run_locust(tmp, tag, argv, {}, args.seconds)
    with (tmp / f"{tag}_stats.csv").open() as fh:
        for row in csv.DictReader(fh):
            if row["Name"] == "Aggregated":
                return float(row["Requests/s"])
    raise RuntimeError(f"no aggregated stats for {tag}; see {tmp / f'{tag}.log'}")


@contextlib.contextmanager
def serving(tmp: Path) -> Iterator[int]:
    """nginx on a free loopback port, for the duration; yields the port."""
    port = free_port()
    (tmp / "www").mkdir()
    (tmp / "www" / "gb-slow").write_bytes(b"x" * SLOW_BODY_BYTES)
    # nginx's workers run as another user when we are root: let them read the page.
    for path in (tmp, tmp / "www", tmp / "www" / "gb-slow"):
        path.chmod(0o755)
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, listen=f"{LOOPBACK}:{port}", form=POLL_FORM))
    server = process.start("nginx", [str(nginx.find_nginx()), "-p", str(tmp), "-e",
                                     str(tmp / "error.log"), "-c", str(conf)],
                           log_path=tmp / "nginx.log")  # fmt: skip
    try:
        process.wait_until(server, "nginx /gb-ok", lambda: http_ok(port, "/gb-ok", "ok"), 10)
        yield port
    finally:
        server.stop()


def bench_closed(tmp: Path, port: int, args: argparse.Namespace) -> None:
    results: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for rnd in range(1, args.rounds + 1):
        for name, (locustfile, processes) in VARIANTS.items():
            tag = f"r{rnd}-{name[0]}"
            rps = closed_rps(tmp, port, locustfile=locustfile, processes=processes, args=args,
                             tag=tag)  # fmt: skip
            results[name].append(rps)
            print(f"round {rnd}: {name}: {rps:.0f} req/s", flush=True)
    medians = {name: statistics.median(v) for name, v in results.items()}
    a, b, c = medians.values()
    print(f"\nmedian of {args.rounds} rounds, {args.users} users, {args.seconds} s each:")
    for name, value in medians.items():
        print(f"  {name:<26} {value:8.0f} req/s")
    overhead = 100 * (1 - b / a)
    print(f"recording overhead: {overhead:.1f} % (goal <= 10 %): "
          f"{'met' if overhead <= 10 else 'NOT met'}")  # fmt: skip
    print(f"2-process scaling: {c / b:.2f}x (goal >= 1.75x): "
          f"{'met' if c / b >= 1.75 else 'NOT met'}")  # fmt: skip


@dataclass
class OpenResult:
    """One open-model run, over the whole seconds of arrivals (the first and last cut off)."""

    label: str
    offered: float  # GB_RATE
    arrivals_s: float  # arrivals the schedule made per second (recorded)
    admitted_s: float  # arrivals dispatched (not dropped) per second
    done_s: float  # requests completed per second
    failures: int
    dropped: int
    drop_pct: float
    lag: Histogram
    cpu_pct: float
    service: Histogram
    intended: Histogram


def _hist(per_second: Mapping[str, Any], seconds: range, one: bool = False) -> Histogram:
    """The histograms of `seconds`: of every request name but the pseudo ones, or (one=True)
    the single histogram each second holds (the dispatch lag)."""
    total = Histogram()
    for s in seconds:
        buckets = per_second.get(str(s), {})
        for name, bucket in ({"": buckets} if one else buckets).items():
            if name not in PSEUDO_KEYS and bucket:
                total.merge(Histogram.from_json(bucket["hist"]))
    return total


def summarise_open(record: Mapping[str, Any], label: str, offered: float) -> OpenResult:
    arrivals = {int(s): c for s, c in record["arrivals"].items()}
    whole = sorted(arrivals)[1:-1]
    window = range(whole[0], whole[-1] + 1)
    n = len(window)
    offered_n = sum(arrivals.get(s, {}).get("arrivals", 0) for s in window)
    dropped = sum(arrivals.get(s, {}).get("dropped", 0) for s in window)
    service = _hist(record["seconds"], window)
    cpu = record["cpu"]
    return OpenResult(
        label=label,
        offered=offered,
        arrivals_s=offered_n / n,
        admitted_s=(offered_n - dropped) / n,
        done_s=service.total / n,
        failures=sum(
            b.get("failures", 0) for s in window for b in record["seconds"].get(str(s), {}).values()
        ),
        dropped=dropped,
        drop_pct=100 * dropped / max(1, offered_n),
        lag=_hist(record["lag"], window, one=True),
        cpu_pct=100 * (value_at(cpu, window.stop) - value_at(cpu, window.start)) / n,
        service=service,
        intended=_hist(record["intended"], window),
    )


def run_open(tmp: Path, port: int, tag: str, seconds: int, env: Mapping[str, str]) -> Record:
    """One open-model Locust process (bare_open.py, or locustfile_open.py when env names a
    GB_ARRIVAL); returns its record."""
    locustfile = "locustfile_open.py" if "GB_ARRIVAL" in env else "bare_open.py"
    records = run_locust(tmp, tag, locust_argv(port, locustfile, 1, seconds), env, seconds)
    (path,) = records.glob("record-local-*.json")
    data: Record = json.loads(path.read_text())
    return data


HEADER = (
    f"{'case':<24} {'offered':>7} {'arr/s':>7} {'adm/s':>7} {'req/s':>7} {'fails':>5} {'drops':>6} "
    f"{'drop%':>6} {'lag50':>6} {'lag99':>6} {'lagmax':>7} {'cpu%':>5} "
    f"{'svc50':>7} {'int50':>7} {'svc99':>7} {'int99':>7}"
)


def row(r: OpenResult) -> str:
    """A table row; lags and latencies in ms."""
    return (
        f"{r.label:<24} {r.offered:7.0f} {r.arrivals_s:7.1f} {r.admitted_s:7.1f} "
        f"{r.done_s:7.1f} {r.failures:5d} {r.dropped:6d} {r.drop_pct:6.1f} "
        f"{r.lag.percentile_ms(50):6.2f} {r.lag.percentile_ms(99):6.2f} {r.lag.max_ms():7.2f} "
        f"{r.cpu_pct:5.0f} {r.service.percentile_ms(50):7.2f} {r.intended.percentile_ms(50):7.2f} "
        f"{r.service.percentile_ms(99):7.2f} {r.intended.percentile_ms(99):7.2f}"
    )


def bench_open(tmp: Path, port: int, args: argparse.Namespace) -> None:
    print(f"open model, 1 Locust process, {args.seconds} s per rate, GET /gb-ok per arrival, "
          f"cap {args.max_inflight}; lag and latencies in ms\n{HEADER}", flush=True)  # fmt: skip
    held = []
    for rate in args.rates:
        env = {"GB_RATE": str(rate), "GB_MAX_INFLIGHT": str(args.max_inflight)}
        r = summarise_open(run_open(tmp, port, f"open-{rate:g}", args.seconds, env),
                           f"rate {rate:g}", rate)  # fmt: skip
        print(row(r), flush=True)
        if (
            not r.dropped + r.failures
            and r.lag.percentile_ms(99) < 5
            and r.admitted_s >= 0.97 * rate
        ):
            held.append(rate)
    best = f"{max(held):g} arrivals/s" if held else "none of the rates"
    print(f"held (no drops or failures, lag p99 < 5 ms, >= 97 % of the offered rate): {best}")


def erlang_b(load: float, servers: int) -> float:
    """Erlang's loss formula: the share of arrivals an M/G/c/c system turns away."""
    b = 1.0
    for k in range(1, servers + 1):
        b = load * b / (k + load * b)
    return b


CHECKS = {
    "fast GET, cap 1000": {"GB_ARRIVAL": "request", "GB_ARRIVAL_PATH": "/gb-ok",
                           "GB_RATE": "200", "GB_MAX_INFLIGHT": "1000"},
    "fast session, cap 1000": {"GB_ARRIVAL": "session", "GB_RATE": "100",
                               "GB_MAX_INFLIGHT": "1000"},
    "slow GET, cap 1000": {"GB_ARRIVAL": "request", "GB_ARRIVAL_PATH": "/gb-slow",
                           "GB_RATE": "4", "GB_MAX_INFLIGHT": "1000"},
    "slow GET, cap 2": {"GB_ARRIVAL": "request", "GB_ARRIVAL_PATH": "/gb-slow",
                        "GB_RATE": "4", "GB_MAX_INFLIGHT": "2"},
    "generator overloaded": {"GB_ARRIVAL": "request", "GB_ARRIVAL_PATH": "/gb-ok",
                             "GB_RATE": "4000", "GB_MAX_INFLIGHT": "1000"},
}  # fmt: skip


def check_open(tmp: Path, port: int, args: argparse.Namespace) -> None:
    print(f"open model checks, 1 Locust process, {args.seconds} s each; lag and latencies in "
          f"ms\n{HEADER}", flush=True)  # fmt: skip
    for i, (label, env) in enumerate(CHECKS.items()):
        r = summarise_open(run_open(tmp, port, f"check-{i}", args.seconds, env), label,
                           float(env["GB_RATE"]))  # fmt: skip
        print(row(r), flush=True)
        cap = int(env["GB_MAX_INFLIGHT"])
        if "slow" in label:
            load = r.arrivals_s * r.service.mean_ms() / 1000
            print(f"{'':<24} offered load {load:.2f} Erlang; Erlang B drops for cap {cap}: "
                  f"{100 * erlang_b(load, cap):.1f} %", flush=True)  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--open", action="store_true", help="the open model's arrivals/s")
    mode.add_argument("--open-check", action="store_true", help="intended vs service latency")
    parser.add_argument("--rates", type=lambda s: [float(r) for r in s.split(",")],
                        default=[250.0, 500.0, 750.0, 1000.0])  # fmt: skip
    parser.add_argument("--max-inflight", type=int, default=1000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="gatewaybench-genbench-"))
    with serving(tmp) as port:
        if args.open:
            bench_open(tmp, port, args)
        elif args.open_check:
            check_open(tmp, port, args)
        else:
            bench_closed(tmp, port, args)
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
