"""How well does the gate tell slower candidates from no change? (a benchmark, not a test)

    .venv/bin/python scripts/gate_detection.py --k 10 --slowdown-pct 10,5

1. Calibrates each slowdown on this machine: one short run above the knee gives the whole
   stack's CPU per request (app server + PostgreSQL + nginx) at the plateau; a candidate that
   adds (1/(1 - s) - 1) times that much CPU work per request (GB_CPU_WORK_MS) serves s fewer
   requests per second at the plateau — "s % slower".
2. Runs the gate K times base-vs-base and K times base-vs-each-slower, interleaved so drift of
   the machine hits all alike, and prints the detection rate (exit 1 on a slower candidate),
   the false-alarm rate (exit 1 on no change), the inconclusive counts and the gate times.

Every gate is appended to --results (JSON lines) with a fingerprint of the code it measured and
the gate's extra arguments, and the summary counts every recorded gate of the same code and
arguments: K=10 can be run in parts, e.g. `--k 5 --cpu-work-ms X,Y` twice, X and Y being the
first part's calibrated work (printed, and in every record).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's harness, the one the fingerprint describes

from gatewaybench.gate.stats import log_ratios  # noqa: E402
from gatewaybench.gate.verdict import METRICS, Trial, abba_pairs, duet_pairs  # noqa: E402

INTERRUPTED = (130, 143)  # a gate stopped by Ctrl-C or SIGTERM measured nothing to count


def _run(argv: list[str]) -> tuple[int, str, str]:
    """The gate, stopped with SIGTERM (it cleans up after itself) if this script is stopped."""
    child = subprocess.Popen(
        argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        out, err = child.communicate()
    except BaseException:
        child.terminate()
        child.communicate(timeout=120)
        raise
    return child.returncode, out, err


def _terminate_on_sigterm() -> None:
    def handler(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def code_fingerprint() -> str:
    """What was measured and how: the harness and the sample app, not the reports."""
    digest = hashlib.sha256()
    for path in sorted([*REPO.glob("gatewaybench/**/*.py"), *REPO.glob("sample_app/**/*.py")]):
        digest.update(path.relative_to(REPO).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


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


def gate(cand: str, server: str, reports: Path, extra: list[str]) -> dict[str, Any]:
    started = time.monotonic()
    code, text, _err = _run([sys.executable, "-m", "gatewaybench", "gate", "--base", ".",
                             "--cand", cand, "--servers", server, "--reports-dir", str(reports),
                             *extra])  # fmt: skip
    lines = text.strip().splitlines()
    return {
        "exit": code,
        "minutes": round((time.monotonic() - started) / 60, 2),
        "headline": next((ln for ln in lines if ln.startswith("**")), "(no headline)"),
        "changes": metric_changes(text),
        "gate_dir": lines[-1] if lines else "",
        "cand_worse_pairs": pair_signs(Path(lines[-1])) if lines else {},
    }


def pair_signs(gate_dir: Path) -> dict[str, list[int]]:
    """Per metric, [pairs where the candidate was worse, pairs with a direction]. Base against
    base, a side that is worse in most pairs points at something that lasts a whole gate on one
    side (the pairing cancels drift, not that). Pairs and directions are the gate's own."""
    path = gate_dir / "trials.csv"
    if not path.is_file():
        return {}
    with path.open() as fh:
        trials = [_trial(row) for row in csv.DictReader(fh)]
    pairs = duet_pairs(trials).pairs if _is_duet(trials) else abba_pairs(trials).pairs
    out: dict[str, list[int]] = {}
    for metric, higher_is_better in METRICS.items():
        values = [(b.value(metric), c.value(metric)) for b, c in pairs]
        usable = [(b, c) for b, c in values if b > 0 and c > 0]  # NaN compares False
        d = [x for x in log_ratios(usable, higher_is_better) if x != 0]  # ties: no direction
        out[metric] = [sum(x > 0 for x in d), len(d)]
    return out


def _is_duet(trials: list[Trial]) -> bool:
    """A duet's blocks hold one base and one candidate trial; A B B A blocks hold four."""
    return all(t.position < 2 for t in trials) and bool(trials)


def _trial(row: dict[str, str]) -> Trial:
    values = {m: float(row[m] or "nan") for m in METRICS}
    valid = row["valid"] == "True"
    return Trial(row["side"], int(row["block"]), int(row["position"]), values, valid)


def sign_test_p(worse: int, total: int) -> float:
    """Two-sided exact sign test: how unlikely this many (or more lopsided) worse pairs are
    when neither side is favoured."""
    k = max(worse, total - worse)
    tail = sum(math.comb(total, i) for i in range(k, total + 1)) / 2**total
    return min(1.0, 2 * float(tail))


def kind_of(record: dict[str, Any]) -> str:
    """ "same", or "slower N %" (records from before the 5 % goal are all 10 % slower)."""
    if record["kind"] == "same":
        return "same"
    return f"slower {record.get('slowdown_pct', 10.0):g} %"


def side_bias(records: list[dict[str, Any]]) -> dict[str, str]:
    """Over every base-vs-base gate: pairs where the candidate measured worse, and the sign
    test's p. Near half with a large p is what identical sides should give."""
    out = {}
    for metric in METRICS:
        worse = total = 0
        for r in records:
            if r["kind"] != "same":
                continue
            signs = r.get("cand_worse_pairs") or pair_signs(Path(r.get("gate_dir", "")))
            w, n = signs.get(metric, [0, 0])
            worse, total = worse + w, total + n
        if total:
            out[metric] = f"{worse}/{total} (sign test p = {sign_test_p(worse, total):.2g})"
    return out


PCT = re.compile(r"^([+-]?[\d.]+) %")


def metric_changes(summary: str) -> dict[str, dict[str, Any]]:
    """Per metric, the median paired change (percent worse), the 95 % bound, the noise and the
    verdict, from the gate's markdown table. Columns are found by their header, so a column the
    gate adds does not silently empty this (it did once, when the bound column came)."""
    out: dict[str, dict[str, Any]] = {}
    header: list[str] = []
    for line in summary.splitlines():
        if not line.startswith("| "):
            header = []
            continue
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if not header:
            header = cells
            continue
        row = dict(zip(header, cells, strict=False))
        change = PCT.match(row.get("change (median, CI)", ""))
        if change is None:  # the rule line, a guard row ("n/a")
            continue
        out[row["metric"]] = {
            "change_pct": float(change[1]),
            "bound_pct": _pct(row.get("95 % bound", "")),
            "noise_pct": _pct(row.get("noise", "")),
            "verdict": row.get("verdict", ""),
        }
    return out


def _pct(text: str) -> float | None:
    """None, not NaN, for "n/a" or a missing column: the records are JSON, which has no NaN."""
    m = PCT.match(text)
    return float(m[1]) if m else None


def effects(records: list[dict[str, Any]], kind: str) -> dict[str, str]:
    """Median (range) of each metric's change over the gates of one kind: how much slower the
    slower candidate measured, not only whether it was caught."""
    out = {}
    metrics = sorted({m for r in records if kind_of(r) == kind for m in r.get("changes", {})})
    for metric in metrics:
        values = [r["changes"][metric]["change_pct"] for r in records
                  if kind_of(r) == kind and metric in r.get("changes", {})]  # fmt: skip
        out[metric] = (
            f"{statistics.median(values):+.1f} % ({min(values):+.1f} .. {max(values):+.1f})"
        )
    return out


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind in sorted({kind_of(r) for r in records}):
        runs = [r for r in records if kind_of(r) == kind]
        out[kind] = {
            "gates": len(runs),
            "regression": sum(r["exit"] == 1 for r in runs),
            "inconclusive": sum(r["exit"] == 3 for r in runs),
            "pass": sum(r["exit"] == 0 for r in runs),
            "other": sum(r["exit"] not in (0, 1, 3) for r in runs),
            "max_minutes": max((r["minutes"] for r in runs), default=0),
        }
    return out


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--slowdown-pct", type=_floats, default=[10.0, 5.0], help="e.g. 10,5")
    p.add_argument(
        "--cpu-work-ms",
        type=_floats,
        help="skip the calibration: each slower side's work, in --slowdown-pct order",
    )
    p.add_argument("--server", default="gunicorn")
    p.add_argument("--plateau-users", type=int, default=300)
    p.add_argument(
        "--gate-args", default="", help="more gate arguments, e.g. '--design sequential'"
    )
    p.add_argument("--reports-dir", type=Path, default=REPO / "reports" / "gate-detection")
    p.add_argument("--results", type=Path, help="JSON lines (default: REPORTS_DIR/results.jsonl)")
    a = p.parse_args()
    _terminate_on_sigterm()
    a.reports_dir.mkdir(parents=True, exist_ok=True)
    results = a.results or a.reports_dir / "results.jsonl"
    fingerprint, extra = code_fingerprint(), a.gate_args.split()
    works = a.cpu_work_ms or _calibrated_work(a)
    if len(works) != len(a.slowdown_pct):
        raise SystemExit("give one --cpu-work-ms per --slowdown-pct")
    cands = [("same", ".", 0.0, 0.0)]
    for pct, work in zip(a.slowdown_pct, works, strict=True):
        slower = Path(tempfile.mkdtemp()) / "slower.toml"
        slower.write_text(f"cpu-work-ms = {work:.3f}\n")
        cands.append(("slower", str(slower), pct, work))
    for i in range(a.k):
        for kind, cand, pct, work in cands:
            record = {"kind": kind, "code": fingerprint, "server": a.server, "gate_args": extra,
                      "slowdown_pct": pct, "cpu_work_ms": round(work, 3)}  # fmt: skip
            record |= gate(cand, a.server, a.reports_dir, extra)
            if record["exit"] in INTERRUPTED:
                print(f"gate interrupted (exit {record['exit']}): not recorded", file=sys.stderr)
                return int(record["exit"])
            with results.open("a") as fh:
                fh.write(json.dumps(record) + "\n")
            print(f"[{i + 1}/{a.k}] {kind_of(record)}: exit {record['exit']} in "
                  f"{record['minutes']:.1f} min {record['headline']}", flush=True)  # fmt: skip
    recorded = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    mine = [r for r in recorded if r["code"] == fingerprint and r["server"] == a.server
            and r.get("gate_args", []) == extra]  # fmt: skip
    report(fingerprint, mine)
    return 0


def _calibrated_work(a: argparse.Namespace) -> list[float]:
    total = stack_cpu_ms_per_request(a.server, a.plateau_users, a.reports_dir)
    works = [(1 / (1 - pct / 100) - 1) * total for pct in a.slowdown_pct]
    for pct, work in zip(a.slowdown_pct, works, strict=True):
        print(f"stack CPU per request at the plateau: {total:.2f} ms; {pct:g} % slower = "
              f"+{work:.2f} ms of CPU work per request", flush=True)  # fmt: skip
    return works


def report(fingerprint: str, mine: list[dict[str, Any]]) -> None:
    summary = summarise(mine)
    works = sorted({r["cpu_work_ms"] for r in mine if r["kind"] != "same"})
    print(json.dumps({"code": fingerprint, "cpu_work_ms": works, **summary}, indent=2))
    for kind in summary:
        print(f"median change per metric, {kind}: {json.dumps(effects(mine, kind))}")
    print(f"base vs base, pairs where the candidate was worse: {json.dumps(side_bias(mine))}")
    same = summary.get("same", {"pass": 0, "regression": 0, "gates": 0})
    caught = "; ".join(f"{k} detected {v['regression']}/{v['gates']}"
                       for k, v in summary.items() if k != "same")  # fmt: skip
    print(
        f"{caught}; false alarms {same['regression']}/{same['gates']}; "
        f"base-vs-base passed {same['pass']}/{same['gates']}"
    )


if __name__ == "__main__":
    sys.exit(main())
