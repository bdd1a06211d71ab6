"""How much does the harness's recording cost the load generator, and how does Locust scale?

Runs, interleaved in rounds on the same nginx `return 200` location (loopback only):
  A  a bare FastHttpUser locustfile, 1 process, no recording
  B  the same user with the harness's recording installed, 1 process
  C  B with --processes 2
and prints median requests/sec, the recording overhead (1 - B/A, goal <= 10 %) and the scaling
of two processes (C/B, goal >= 1.75x). A benchmark, not a test: it reports, it does not assert.

    .venv/bin/python scripts/bench_generator.py [--seconds 15] [--users 50] [--rounds 3]
"""

from __future__ import annotations

import argparse
import csv
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gatewaybench.stack import nginx, process  # noqa: E402
from gatewaybench.stack.app import bin_dir  # noqa: E402
from gatewaybench.stack.net import LOOPBACK, free_port, http_ok  # noqa: E402

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
    }}
}}
"""
VARIANTS = {
    "A bare, 1 process": ("bare.py", 1),
    "B recorded, 1 process": ("bare_recorded.py", 1),
    "C recorded, 2 processes": ("bare_recorded.py", 2),
}


def run_locust(
    tmp: Path,
    port: int,
    *,
    locustfile: str,
    processes: int,
    args: argparse.Namespace,
    tag: str,
) -> float:
    prefix = tmp / tag
    argv = [
        str(bin_dir() / "locust"), f"--locustfile={REPO / 'loadtests' / locustfile}",
        "--headless", f"--host=http://{LOOPBACK}:{port}", f"--users={args.users}",
        f"--spawn-rate={args.users}", f"--run-time={args.seconds}s", f"--csv={prefix}",
        "--only-summary", "--loglevel=WARNING",
    ]  # fmt: skip
    if processes > 1:
        master = free_port()
        argv += [
            f"--processes={processes}",
            f"--master-bind-host={LOOPBACK}",
            f"--master-bind-port={master}",
            f"--master-host={LOOPBACK}",
            f"--master-port={master}",
        ]
    env = {"PATH": "/usr/bin:/bin", "GB_RECORD_DIR": str(tmp / f"{tag}-records")}
    proc = process.start(tag, argv, log_path=tmp / f"{tag}.log", env=env)
    try:
        proc.popen.wait(timeout=args.seconds + 60)
    finally:
        proc.stop()
    with (tmp / f"{tag}_stats.csv").open() as fh:
        for row in csv.DictReader(fh):
            if row["Name"] == "Aggregated":
                return float(row["Requests/s"])
    raise RuntimeError(f"no aggregated stats for {tag}; see {tmp / f'{tag}.log'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="gatewaybench-genbench-"))
    port = free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, listen=f"{LOOPBACK}:{port}"))
    server = process.start("nginx", [str(nginx.find_nginx()), "-p", str(tmp), "-e",
                                     str(tmp / "error.log"), "-c", str(conf)],
                           log_path=tmp / "nginx.log")  # fmt: skip
    results: dict[str, list[float]] = {name: [] for name in VARIANTS}
    try:
        process.wait_until(server, "nginx /gb-ok", lambda: http_ok(port, "/gb-ok", "ok"), 10)
        for rnd in range(1, args.rounds + 1):
            for name, (locustfile, processes) in VARIANTS.items():
                rps = run_locust(
                    tmp,
                    port,
                    locustfile=locustfile,
                    processes=processes,
                    args=args,
                    tag=f"r{rnd}-{name[0]}",
                )
                results[name].append(rps)
                print(f"round {rnd}: {name}: {rps:.0f} req/s", flush=True)
    finally:
        server.stop()
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
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
