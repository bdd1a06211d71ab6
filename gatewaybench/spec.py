"""The resolved run specification: frozen dataclasses, built once at the edge and validated once.

Nothing below cli.py reads argv or the environment; everything a run does comes from a RunSpec,
and the manifest records `RunSpec.to_json()` so a run can be understood without its command line.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from gatewaybench.errors import UsageError
from gatewaybench.matrix import (
    DB_STRATEGIES,
    DRIVERS,
    UNBUFFERED,
    VIEWS,
    WAIT_SEP,
    Budget,
    Cell,
    check_cell,
    effective,
    unique_labels,
)
from gatewaybench.servers import REGISTRY

SEED_SERVERS = ("gunicorn", "uvicorn", "daphne", "hypercorn")
SEED_CELLS = tuple(Cell(s) for s in SEED_SERVERS)
SEED_USERS = (100, 200, 300, 400, 500, 600, 700)
PG_DEFAULT_MAX_CONNECTIONS = 100  # PostgreSQL's own default: what "Django defaults" meet
PG_RESERVE = 10  # the harness's superuser slots and monitoring, above the app's own need
LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,40}$")


@dataclass(frozen=True)
class NginxSettings:
    worker_processes: str = "auto"
    worker_connections: int = 1024
    listen_backlog: int = 511
    upstream_keepalive: int = 64
    proxy_connect_timeout_s: int = 5
    proxy_read_timeout_s: int = 60
    access_log: bool = True
    port: int = 0  # 0: a free loopback port is chosen


@dataclass(frozen=True)
class PostgresSettings:
    max_connections: int = 0  # 0: sized from the budget (see sized_max_connections)
    port: int = 0


@dataclass(frozen=True)
class DjangoSettings:
    conn_max_age: int = 60  # seconds, for cells with persistent connections
    cpu_work_ms: float = 0.0  # CPU work added per request (the gate's known slowdown); 0: off
    upstream_calls: int = 1  # calls to the delayed upstream per polls request (when waiting)
    db_wait_ms: int = 0  # pg_sleep inside the vote's transaction, ms; 0: off
    questions: int = 10
    choices: int = 4


MODELS = ("closed", "open")  # users who wait for their responses; arrivals that do not
ARRIVALS = ("session", "request")  # what one user iteration or arrival runs
DEFAULT_MAX_INFLIGHT = 1000  # must match loadtests.arrivals.DEFAULT_MAX_INFLIGHT


@dataclass(frozen=True)
class LoadSettings:
    users: tuple[int, ...] = SEED_USERS  # empty: calibrate (--users auto)
    # The open model (--model open): arrivals per second per step (empty: calibrate, --rate
    # auto), at most max_inflight sessions in flight (beyond: dropped and counted).
    models: tuple[str, ...] = ("closed",)
    rates: tuple[float, ...] = ()
    max_inflight: int = DEFAULT_MAX_INFLIGHT
    arrival: str = "session"  # one polls session, or one GET of arrival_path
    arrival_path: str = "/polls/"
    arrival_seed: int = 1  # the Poisson arrivals' seed (each step's stream starts from it)
    ramp_s: float = 2.0  # users are spawned over this long...
    warmup_s: float = 3.0  # ...then this long passes before the steady window starts
    window_s: int = 30  # the steady window the figures come from
    client_timeout_s: float = 10.0
    stop_timeout_s: float = 15.0  # drain: how long in-flight requests get when a step stops
    processes: int = 1  # Locust's generator processes (>1: its own master + workers; 0: auto)
    think_min_s: float = 1.0  # fixed by the scenario (between(1, 2)); recorded for Little's law
    think_max_s: float = 2.0
    auto_steps: int = 7  # --users auto: how many steps bracket the calibrated knees
    slow_upload_pct: int = 0  # percent of users that upload a body slowly (slow clients)
    slow_upload_kb: int = 64
    slow_upload_kbps: float = 16.0

    @property
    def slow_upload_s(self) -> float:
        return self.slow_upload_kb / self.slow_upload_kbps if self.slow_upload_pct else 0.0

    def spawn_rate(self, users: int) -> float:
        return max(1.0, users / self.ramp_s) if self.ramp_s > 0 else float(users)


@dataclass(frozen=True)
class Thresholds:
    """What "held" means for capacity: a valid step under both limits."""

    slo_ms: float = 1000.0  # p95 latency limit; also the line for slow_pct
    fail_pct: float = 1.0


@dataclass(frozen=True)
class AppSource:
    """Which application is served: the polls sample app, or the user's own project."""

    app_dir: Path | None = None  # None: the bundled sample_app
    wsgi: str = ""  # module:attribute
    asgi: str = ""
    locustfile: Path | None = None
    setup: tuple[str, ...] = ()  # commands run once after the database exists, e.g. migrate
    health_path: str = "/healthz"

    @property
    def is_sample(self) -> bool:
        return self.app_dir is None


@dataclass(frozen=True)
class RunSpec:
    cells: tuple[Cell, ...] = SEED_CELLS
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    threads: int = 1  # per worker process; with workers, the budget every server gets
    preset: str = "seed"
    run_label: str = "bench"  # --label: the run directory's suffix (a cell's label is Cell.label)
    reports_dir: Path = Path("reports")
    load: LoadSettings = field(default_factory=LoadSettings)
    nginx: NginxSettings = field(default_factory=NginxSettings)
    postgres: PostgresSettings = field(default_factory=PostgresSettings)
    django: DjangoSettings = field(default_factory=DjangoSettings)
    app_port: int = 0
    thresholds: Thresholds = field(default_factory=Thresholds)
    repeat: int = 1  # the whole matrix N times, servers interleaved
    app: AppSource = field(default_factory=AppSource)
    upstream_ms: tuple[int, ...] = ()  # the wait dimension; the cells already carry it

    @property
    def waits(self) -> tuple[int | None, ...]:
        """The cells' upstream waits in matrix order (None: no wait dimension)."""
        return tuple(dict.fromkeys(c.upstream_ms for c in self.cells))

    @property
    def max_wait_s(self) -> float:
        """The longest wait one request makes (upstream calls, and the vote's database sleep)."""
        upstream = max((c.upstream_ms or 0 for c in self.cells), default=0)
        return (upstream * self.django.upstream_calls + self.django.db_wait_ms) / 1000

    @property
    def budget(self) -> Budget:
        return Budget(self.workers, self.threads)

    @property
    def servers(self) -> tuple[str, ...]:
        """Cell labels, in matrix order: what every table calls a "server"."""
        return tuple(c.label for c in self.cells)

    def to_json(self) -> dict[str, Any]:
        # On disk the run's label keeps its flag's name, `label`.
        data = {"label" if k == "run_label" else k: v for k, v in asdict(self).items()}
        data["reports_dir"] = str(self.reports_dir)
        data["app"] = {k: str(v) if isinstance(v, Path) else v for k, v in data["app"].items()}
        data["cells"] = [{"label": c.label, **asdict(c)} for c in self.cells]
        return data


def sized_max_connections(spec: RunSpec) -> int:
    """PostgreSQL max_connections: the given value, or what the budget needs plus a reserve.
    A cell whose connections are unbounded keeps PostgreSQL's default (the seed's setting)."""
    if spec.postgres.max_connections:
        return spec.postgres.max_connections
    needs = [effective(c, spec.budget).max_db_connections for c in spec.cells]
    bounded = [n for n in needs if n is not None]
    if len(bounded) < len(needs):
        return max(PG_DEFAULT_MAX_CONNECTIONS, max(bounded, default=0) + PG_RESERVE)
    return max(bounded, default=0) + PG_RESERVE


def parse_steps(text: str) -> tuple[int, ...]:
    """`100,200,300` or `start:stop:step` (stop inclusive). Strictly increasing positive ints."""
    fix = "give users as a list like 100,200,300 or a range like 100:700:100"
    text = text.strip()
    try:
        if ":" in text:
            start, stop, step = (int(p) for p in text.split(":"))
            if step <= 0:
                raise UsageError(f"step list {text!r}: the range step must be positive", fix)
            steps = tuple(range(start, stop + 1, step))
        else:
            steps = tuple(int(p) for p in text.split(","))
    except ValueError:
        raise UsageError(f"step list {text!r} is malformed", fix) from None
    _check_levels(steps, f"step list {text!r}", "user counts", fix)
    return steps


def _check_levels(levels: tuple[float, ...], what: str, counts: str, fix: str) -> None:
    """A list of steps, whatever they count: not empty, positive, strictly increasing."""
    if not levels:
        raise UsageError(f"{what} is empty", fix)
    if any(not (v > 0 and math.isfinite(v)) for v in levels):
        raise UsageError(f"{what}: {counts} must be positive", fix)
    if any(b <= a for a, b in pairwise(levels)):
        raise UsageError(f"{what} must be strictly increasing", fix)


def parse_rates(text: str) -> tuple[float, ...]:
    """`5,10,20` or `start:stop:step` (stop inclusive): arrivals per second, positive and
    strictly increasing."""
    fix = "give arrivals/s as a list like 5,10,20 or a range like 10:50:10"
    text = text.strip()
    if not text.strip(","):
        raise UsageError(f"rate list {text!r} is empty", fix)
    try:
        if ":" in text:
            start, stop, step = (float(p) for p in text.split(":"))
            if step <= 0:
                raise UsageError(f"rate list {text!r}: the range step must be positive", fix)
            count = math.floor((stop - start) / step + 1e-9) + 1
            rates = tuple(round(start + i * step, 9) for i in range(max(0, count)))
        else:
            rates = tuple(float(p) for p in text.split(","))
    except ValueError:
        raise UsageError(f"rate list {text!r} is malformed", fix) from None
    _check_levels(rates, f"rate list {text!r}", "arrival rates", fix)
    return rates


def parse_models(text: str) -> tuple[str, ...]:
    return _parse_choices(text, "--model", MODELS)


def parse_cells(text: str) -> tuple[Cell, ...]:
    """`uvicorn+async+pool,gunicorn+persistent`: a server, then any of views/db/driver."""

    cells = []
    for entry in (t.strip() for t in text.split(",") if t.strip()):
        item, sep, wait = entry.partition(WAIT_SEP)
        server, *parts = item.split("+")
        buffering = UNBUFFERED not in parts
        fields: dict[str, str] = {}
        for part in (p for p in parts if p != UNBUFFERED):
            key = next(
                (k for k, opts in (("views", VIEWS), ("db", DB_STRATEGIES), ("driver", DRIVERS))
                 if part in opts), None)  # fmt: skip
            if key is None or key in fields:
                raise UsageError(
                    f"cell {item!r}: {part!r} is not a views, db or driver choice (or repeats)",
                    "write server[+views][+db][+driver][+unbuffered], e.g. uvicorn+async+pool; "
                    "views: "
                    f"{'/'.join(VIEWS)}, db: {'/'.join(DB_STRATEGIES)}, "
                    f"driver: {'/'.join(DRIVERS)}",
                )
            fields[key] = part
        cell = Cell(
            server,
            **fields,
            upstream_ms=_cell_wait(entry, wait) if sep else None,
            request_buffering=buffering,
        )
        check_cell(cell)
        cells.append(cell)
    if not cells:
        raise UsageError("no cell given", "e.g. --cells gunicorn,uvicorn+async+pool")
    result = tuple(cells)
    unique_labels(result)
    return result


def _cell_wait(entry: str, wait: str) -> int:
    """`100ms` in `gunicorn@100ms` (a label as tables print it)."""
    digits = wait.removesuffix("ms")
    if not digits.isdigit():
        raise UsageError(
            f"cell {entry!r}: the upstream wait must be whole ms, like @100ms",
            "write server[+views][+db][+driver][@<ms>ms], or use --upstream-ms",
        )
    return int(digits)


def parse_waits(text: str) -> tuple[int, ...]:
    """`0,20,100,300`: upstream waits in ms, whole, not negative, strictly increasing."""
    fix = "give waits in ms as an increasing list, e.g. --upstream-ms 0,20,100,300"
    try:
        waits = tuple(int(p) for p in text.split(","))
    except ValueError:
        raise UsageError(f"--upstream-ms {text!r} is not a list of whole ms", fix) from None
    if any(w < 0 for w in waits):
        raise UsageError(f"--upstream-ms {text!r}: a wait must not be negative", fix)
    if any(b <= a for a, b in pairwise(waits)):
        raise UsageError(f"--upstream-ms {text!r} must be strictly increasing", fix)
    return waits


def _parse_choices(text: str, what: str, choices: tuple[str, ...]) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    bad = [n for n in names if n not in choices]
    if not names or bad:
        raise UsageError(f"{what} {text!r} is not valid", f"choose from: {', '.join(choices)}")
    return tuple(dict.fromkeys(names))


def parse_views(text: str) -> tuple[str, ...]:
    return _parse_choices(text, "views", VIEWS)


def parse_dbs(text: str) -> tuple[str, ...]:
    return _parse_choices(text, "db strategy", DB_STRATEGIES)


def parse_servers(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    known = ", ".join(REGISTRY)
    if not names:
        raise UsageError("no server given", f"choose from: {known}")
    for name in names:
        if name not in REGISTRY:
            raise UsageError(f"unknown server {name!r}", f"choose from: {known}")
    if len(set(names)) != len(names):
        raise UsageError(f"server list {text!r} repeats a server", "name each server once")
    return names


def validate(spec: RunSpec) -> RunSpec:
    """Checks that need the whole spec; raises UsageError naming the setting and the fix."""
    load = spec.load
    _positive("--window", load.window_s)
    _positive("--client-timeout", load.client_timeout_s)
    _not_negative("--warmup", load.warmup_s)
    _not_negative("--ramp", load.ramp_s)
    _not_negative("--stop-timeout", load.stop_timeout_s)
    _positive("--workers", spec.workers)
    _not_negative("--processes", load.processes)
    _positive("--repeat", spec.repeat)
    _positive("--slo-ms", spec.thresholds.slo_ms)
    _positive("--capacity-fail-pct", spec.thresholds.fail_pct)
    _not_negative("--pg-max-connections", spec.postgres.max_connections)
    _positive("--threads", spec.threads)
    if not spec.cells:
        raise UsageError("the matrix is empty", "give --servers, --cells or a --preset")
    for cell in spec.cells:
        check_cell(cell)
    unique_labels(spec.cells)
    _positive("--nginx-worker-connections", spec.nginx.worker_connections)
    _not_negative("--conn-max-age", spec.django.conn_max_age)
    _not_negative("--cpu-work-ms", spec.django.cpu_work_ms)
    _positive("--upstream-calls", spec.django.upstream_calls)
    _not_negative("--db-wait-ms", spec.django.db_wait_ms)
    if load.auto_steps < 2:  # one step brackets nothing
        raise UsageError(f"--auto-steps must be at least 2, got {load.auto_steps}", "pass 2+")
    _check_waits(spec)
    _check_slow_uploads(load, spec.app.is_sample)
    _check_open_model(load, spec.app)
    _positive("--questions", spec.django.questions)
    _positive("--choices", spec.django.choices)
    for flag, port in (
        ("--nginx-port", spec.nginx.port),
        ("--pg-port", spec.postgres.port),
        ("--app-port", spec.app_port),
    ):
        if not 0 <= port <= 65535:
            raise UsageError(f"{flag} {port} is not a port", "use 1-65535, or 0 for a free port")
    if not LABEL_RE.match(spec.run_label):
        raise UsageError(
            f"label {spec.run_label!r} is not usable in a directory name",
            "use letters, digits, '.', '_' or '-' (at most 41 characters)",
        )
    wp = spec.nginx.worker_processes
    if wp != "auto" and not (wp.isdigit() and int(wp) > 0):
        raise UsageError(f"--nginx-worker-processes {wp!r} is invalid", "use 'auto' or a number")
    return spec


def _check_waits(spec: RunSpec) -> None:
    """A request that waits longer than the client's timeout can only fail: nothing to learn."""
    waits = {c.upstream_ms for c in spec.cells}
    if None in waits and len(waits) > 1:
        raise UsageError(
            "some cells have an upstream wait and some do not",
            "give every cell a wait (--upstream-ms, or @<ms>ms on each --cells entry)",
        )
    if spec.max_wait_s >= spec.load.client_timeout_s:
        raise UsageError(
            f"a request waits {spec.max_wait_s:g} s (upstream x calls + db wait), not less than "
            f"the client timeout {spec.load.client_timeout_s:g} s",
            "use shorter waits or a longer --client-timeout",
        )
    if (spec.django.upstream_calls != 1 or spec.django.db_wait_ms) and not spec.app.is_sample:
        raise UsageError(
            "--upstream-calls and --db-wait-ms apply to the sample app only", "leave them out"
        )
    if waits != {None} and not spec.app.is_sample:
        raise UsageError("upstream waits apply to the sample app only", "leave out --upstream-ms")


def _check_open_model(load: LoadSettings, app: AppSource) -> None:
    if load.max_inflight < 1:
        raise UsageError(
            f"--max-inflight must be at least 1, got {load.max_inflight}",
            "pass --max-inflight 1 or more (sessions in flight; arrivals beyond are dropped)",
        )
    if load.arrival not in ARRIVALS:
        raise UsageError(f"--arrival {load.arrival!r} is not valid", "choose session or request")
    if not load.arrival_path.startswith("/"):
        raise UsageError(
            f"--arrival-path {load.arrival_path!r} must start with /", "e.g. --arrival-path /polls/"
        )
    if "open" in load.models and load.slow_upload_pct:
        raise UsageError(
            "slow uploads are closed-model users", "leave out --slow-upload-pct with --model open"
        )
    if not app.is_sample and load.arrival == "session" and "open" in load.models:
        raise UsageError(
            "the open model runs the polls session or one page, not your --locustfile",
            "add --arrival request --arrival-path /your/page",
        )


def _check_slow_uploads(load: LoadSettings, sample: bool) -> None:
    if not 0 <= load.slow_upload_pct < 100:
        raise UsageError(
            f"--slow-upload-pct {load.slow_upload_pct} is not a share of users",
            "use 0 (none) to 99",
        )
    if not load.slow_upload_pct:
        return
    if not sample:
        raise UsageError("slow uploads apply to the sample app only", "leave out --slow-upload-pct")
    _positive("--slow-upload-kb", load.slow_upload_kb)
    _positive("--slow-upload-kbps", load.slow_upload_kbps)
    if load.slow_upload_s >= load.window_s:
        raise UsageError(
            f"a slow upload of {load.slow_upload_kb} KB at {load.slow_upload_kbps:g} KB/s takes "
            f"{load.slow_upload_s:g} s, not less than the {load.window_s} s window",
            "upload less, faster, or use a longer --window",
        )


def _positive(flag: str, value: float) -> None:
    if not value > 0:
        raise UsageError(f"{flag} must be positive, got {value:g}", f"pass {flag} with a value > 0")


def _not_negative(flag: str, value: float) -> None:
    if value < 0:
        raise UsageError(f"{flag} must not be negative, got {value:g}", f"pass {flag} >= 0")
