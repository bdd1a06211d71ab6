"""One step = one Locust process: spawn N users, warm up, measure the window, drain, exit.

A fresh process per step means every step starts from the same client state, ends drained,
and can be audited against the database on its own. Locust exits 1 whenever any request
failed: that is a finished step, not a crash; a crash is a step without records.
"""

from __future__ import annotations

import contextlib
import math
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from gatewaybench.analysis.step import level_text
from gatewaybench.signals import checkpoint
from gatewaybench.spec import LoadSettings
from gatewaybench.stack import process
from gatewaybench.stack.app import bin_dir
from gatewaybench.stack.net import LOOPBACK, free_port

LOCUSTFILE = Path(__file__).resolve().parents[2] / "loadtests" / "locustfile.py"
# The open model: arrivals on a Poisson schedule (loadtests/openmodel.py), whatever the app.
OPEN_LOCUSTFILE = LOCUSTFILE.with_name("locustfile_open.py")
# Loaded beside a user's own locustfile: the harness's recording listeners, and no users.
HARNESS_LOCUSTFILE = LOCUSTFILE.with_name("harness.py")
HARD_CAP_SLACK_S = 30  # --run-time backstop, in case the scenario's own stop never fires
WAIT_SLACK_S = 60  # beyond run time + drain, the harness stops Locust itself
WAIT_POLL_S = 0.5


@dataclass(frozen=True)
class OpenStep:
    """An open-model step: Poisson arrivals at `rate` per second, at most `max_inflight`
    sessions in flight (loadtests/arrivals.py reads these as GB_* variables)."""

    rate: float
    max_inflight: int
    seed: int


@dataclass(frozen=True)
class StepPlan:
    users: int  # the closed model's; an open step runs one idle user per process
    host_port: int
    record_dir: Path
    csv_prefix: Path
    question_ids: tuple[int, ...]
    gen_processes: int = 1  # Locust processes generating the load (--processes)
    locustfile: Path | None = None  # a user's scenario; None: the polls scenario
    open_step: OpenStep | None = None  # None: the closed model

    @property
    def locustfiles(self) -> str:
        if self.open_step is not None:
            return str(OPEN_LOCUSTFILE)
        if self.locustfile is None:
            return str(LOCUSTFILE)
        return f"{self.locustfile},{HARNESS_LOCUSTFILE}"

    @property
    def locust_users(self) -> int:
        """Locust's --users: the closed model's users; the open model's arrivals belong to no
        user, but Locust starts a test only with one (an idle one per process)."""
        return self.users if self.open_step is None else self.gen_processes

    @property
    def name(self) -> str:
        return level_text(self.users, None if self.open_step is None else self.open_step.rate)


def run_time_cap_s(load: LoadSettings) -> int:
    return math.ceil(load.ramp_s + load.warmup_s + load.window_s + 1) + HARD_CAP_SLACK_S


def locust_argv(bin_dir: Path, load: LoadSettings, plan: StepPlan, master_port: int) -> list[str]:
    argv = [
        str(bin_dir / "locust"),
        f"--locustfile={plan.locustfiles}",
        "--headless",
        f"--host=http://{LOOPBACK}:{plan.host_port}",
        f"--users={plan.locust_users}",
        f"--spawn-rate={load.spawn_rate(plan.locust_users):g}",
        f"--run-time={run_time_cap_s(load)}s",
        f"--stop-timeout={load.stop_timeout_s:g}",
        f"--csv={plan.csv_prefix}",
        f"--html={plan.csv_prefix}.html",
        "--only-summary",
        "--loglevel=INFO",
    ]
    if plan.gen_processes > 1:
        # Locust's own master/worker distribution; the master listens on loopback only, and
        # the forked workers must be told the same port (they read --master-port, not -bind-).
        argv += [
            f"--processes={plan.gen_processes}",
            f"--master-bind-host={LOOPBACK}",
            f"--master-bind-port={master_port}",
            f"--master-host={LOOPBACK}",
            f"--master-port={master_port}",
        ]
    return argv


def locust_env(base: dict[str, str], load: LoadSettings, plan: StepPlan) -> dict[str, str]:
    env = dict(base)
    env.update(
        {
            "GB_RECORD_DIR": str(plan.record_dir),
            "GB_QUESTION_IDS": ",".join(str(q) for q in plan.question_ids),
            "GB_CLIENT_TIMEOUT_S": f"{load.client_timeout_s:g}",
            "GB_WARMUP_S": f"{load.warmup_s:g}",
            "GB_WINDOW_S": str(load.window_s),
            "GB_SLOW_UPLOAD_PCT": str(load.slow_upload_pct),
            "GB_SLOW_UPLOAD_KB": str(load.slow_upload_kb),
            "GB_SLOW_UPLOAD_KBPS": f"{load.slow_upload_kbps:g}",
            "GB_ARRIVAL": load.arrival,
            "GB_ARRIVAL_PATH": load.arrival_path,
            "PYTHONUNBUFFERED": "1",
        }
    )
    if plan.open_step is not None:
        env.update(
            {
                "GB_RATE": repr(plan.open_step.rate),
                "GB_MAX_INFLIGHT": str(plan.open_step.max_inflight),
                "GB_ARRIVAL_SEED": str(plan.open_step.seed),
            }
        )
    return env


def start_step(
    load: LoadSettings, plan: StepPlan, base_env: dict[str, str], log_path: Path
) -> process.ManagedProcess:
    plan.record_dir.mkdir(parents=True, exist_ok=True)
    return process.start(
        f"locust ({plan.name})",
        locust_argv(bin_dir(), load, plan, free_port()),
        log_path=log_path,
        env=locust_env(base_env, load, plan),
    )


def wait_step(proc: process.ManagedProcess, load: LoadSettings) -> int | None:
    """Wait for the step to end by itself. Returns Locust's exit code (None: we had to stop it)."""
    deadline = time.monotonic() + run_time_cap_s(load) + load.stop_timeout_s + WAIT_SLACK_S
    try:
        while time.monotonic() < deadline:
            checkpoint()  # short waits: a signal whose exception was lost still ends the step
            left = deadline - time.monotonic()
            with contextlib.suppress(subprocess.TimeoutExpired):
                return proc.popen.wait(timeout=max(0.0, min(WAIT_POLL_S, left)))
        return None
    finally:
        proc.stop(timeout_s=load.stop_timeout_s + 5)
