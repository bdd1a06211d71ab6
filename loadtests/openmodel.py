"""The open model on Locust: visitors arrive on a seeded Poisson schedule (arrivals.py) whether
or not the server has answered the earlier ones, each running one polls session (no think time)
or, in request mode, one GET of a page.

One dispatcher per load-generating Locust process (the local runner, or each worker; never the
master), started on test_start: a greenlet that sleeps until each intended arrival, measures its
own lag (actual - intended) and either drops the arrival (sessions in flight at the cap: counted)
or spawns a greenlet running the session. It is tied to the process, not to a Locust user,
because Locust spreads users over workers as it likes; the process's place comes from Locust
itself: a worker's index (the master's ack) of the master's expected worker count
(--processes/--expect-workers, sent with every spawn message). Locust still wants a User class
to start a test, so OpenModelUser only idles; run with --users 1 (any count works).

Sessions share one connection pool of `cap` connections; each has its own cookie jar (a new
visitor). Every request is recorded twice: its service time from the actual send (Locust's
request event, as in the closed model) and its latency from its intended start (Recorder's
"intended"): a session's first request was meant to start at the arrival, each later one at
the previous one's completion. Settings: arrivals.OpenConfig.from_env (GB_RATE, ...).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import gevent
from gevent.pool import Group
from geventhttpclient.client import HTTPClientPool
from locust import User, constant, events, task
from locust.contrib.fasthttp import FastHttpSession, FastHttpUser, insecure_ssl_context_factory
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from loadtests import listeners, polls
from loadtests.arrivals import OpenConfig, ProcessPlan

Scenario = Callable[[FastHttpSession], None]


class OpenModelUser(User):
    """Locust starts a test only with a User class; the open model's load is arrivals, not
    users (see the module docstring), so this one idles until the test stops."""

    wait_time = constant(3600)

    @task
    def idle(self) -> None:
        pass


@dataclass
class Visit:
    """One arrival's session: when its next request was meant to start (epoch seconds)."""

    intended_s: float


# The greenlet running each session in flight -> its visit: the request event fires in the
# session's own greenlet, and names no session.
VISITS: dict[Any, Visit] = {}
STATE: dict[str, Any] = {"config": None, "dispatcher": None}


def poll_session(client: FastHttpSession) -> None:
    polls.vote_once(client, random.choice(polls.QUESTION_IDS))


def scenario_of(config: OpenConfig) -> Scenario:
    if config.arrival == "request":
        return lambda client: polls.get_page(client, config.path)
    return poll_session


def visitor_factory(environment: Environment, connections: int) -> Callable[[], FastHttpSession]:
    """New visitors (own cookie jar) over one shared pool of `connections` connections; the
    client settings are FastHttpUser's, with the closed model's timeouts."""
    pool = HTTPClientPool(
        concurrency=max(1, connections),
        network_timeout=polls.CLIENT_TIMEOUT_S,
        connection_timeout=polls.CLIENT_TIMEOUT_S,
        insecure=FastHttpUser.insecure,
        ssl_context_factory=insecure_ssl_context_factory,
    )

    def visitor() -> FastHttpSession:
        return FastHttpSession(
            base_url=environment.host,
            request_event=environment.events.request,
            user=None,
            client_pool=pool,
            max_redirects=FastHttpUser.max_redirects,
            max_retries=FastHttpUser.max_retries,
        )

    return visitor


def wait_until(when_s: float) -> None:
    delay = when_s - time.time()
    if delay <= 0:
        gevent.sleep(0)  # running late: still let the sessions read their responses
    # A loop: a timer may wake a hair early, and an arrival is never sent before its time.
    while delay > 0:
        gevent.sleep(delay)
        delay = when_s - time.time()


class Dispatcher:
    """One process's arrivals: its schedule and cap (a ProcessPlan), run in a greenlet."""

    def __init__(self, plan: ProcessPlan, scenario: Scenario, visitor: Callable[[], Any]) -> None:
        self.plan = plan
        self.scenario = scenario
        self.visitor = visitor
        self.sessions = Group()
        self.greenlet: Any = None

    def start(self) -> None:
        self.greenlet = gevent.spawn(self._run)

    def stop_arrivals(self) -> None:
        if self.greenlet is not None:
            self.greenlet.kill(block=False)

    def stop(self) -> None:
        self.stop_arrivals()
        self.sessions.kill(block=False)

    def _run(self) -> None:
        for intended_s in self.plan.schedule:
            wait_until(intended_s)
            if listeners.stopping():
                return
            self._dispatch(intended_s)

    def _dispatch(self, intended_s: float) -> None:
        lag_ms = (time.time() - intended_s) * 1000
        admitted = self.plan.cap.admit()
        if admitted:
            self.sessions.spawn(self._visit, intended_s)
        rec = listeners.recorder()
        if rec is not None:
            rec.arrival(intended_s, lag_ms, dropped=not admitted)

    def _visit(self, intended_s: float) -> None:
        me = gevent.getcurrent()
        VISITS[me] = Visit(intended_s)
        try:
            self.scenario(self.visitor())
        finally:
            del VISITS[me]
            self.plan.cap.release()
            rec = listeners.recorder()
            if rec is not None:
                rec.task_done()  # a session is the open model's iteration, finished or cut short


def process_slot(environment: Environment) -> tuple[int, int] | None:
    """This process's (index, number of load processes); None on a master (it sends nothing)."""
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        return None
    if isinstance(runner, WorkerRunner):
        expected = getattr(environment.parsed_options, "expect_workers", 1) or 1
        return max(0, runner.worker_index), int(expected)
    return 0, 1


def _on_test_start(environment: Environment, **_: Any) -> None:
    config: OpenConfig = STATE["config"]
    slot = process_slot(environment)
    plan = None if slot is None else config.for_process(*slot, start_s=time.time())
    rec = listeners.recorder()
    if rec is not None:
        rec.open_model = {**asdict(config), **(plan.describe() if plan else {})}
    if plan is None:
        return
    if environment.host is None:
        raise ValueError("the open model needs --host")
    _stop(stop_sessions=True)  # a test started again replaces its dispatcher
    dispatcher = Dispatcher(plan, scenario_of(config), visitor_factory(environment, plan.cap.cap))
    STATE["dispatcher"] = dispatcher
    dispatcher.start()


def _stop(*, stop_sessions: bool) -> None:
    dispatcher: Dispatcher | None = STATE["dispatcher"]
    if dispatcher is None:
        return
    if stop_sessions:
        dispatcher.stop()
    else:
        dispatcher.stop_arrivals()


def _on_test_stopping(**_: Any) -> None:
    # Like the closed model's drain: no new arrival; sessions finish the request in flight.
    _stop(stop_sessions=False)


def _on_test_stop(**_: Any) -> None:
    _stop(stop_sessions=True)


def _on_request(
    request_type: str,
    name: str,
    response_time: float,
    start_time: float | None = None,
    exception: BaseException | None = None,
    **_: Any,
) -> None:
    """The request's latency from its intended start; the session's next request was meant to
    start at this one's completion (no think time)."""
    visit = VISITS.get(gevent.getcurrent())
    if visit is None or start_time is None:
        return  # not an open-model session's request
    done_s = start_time + (response_time or 0.0) / 1000
    rec = listeners.recorder()
    if rec is not None:
        latency_ms = (done_s - visit.intended_s) * 1000
        rec.intended_request(f"{request_type} {name}", latency_ms, exception is not None)
    visit.intended_s = done_s


def install(config: OpenConfig) -> None:
    """Register the open model's listeners; call after listeners.install() (the record is
    written on test_stop before the sessions left are killed)."""
    STATE["config"] = config
    events.test_start.add_listener(_on_test_start)
    events.test_stopping.add_listener(_on_test_stopping)
    events.test_stop.add_listener(_on_test_stop)
    events.request.add_listener(_on_request)
