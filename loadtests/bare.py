"""A bare FastHttpUser hammering nginx's `return 200` location, with no recording: the baseline
for measuring what the harness's recording costs the generator (scripts/bench_generator.py)."""

from __future__ import annotations

from locust import FastHttpUser, constant, task

PATH = "/gb-ok"


class BareUser(FastHttpUser):
    wait_time = constant(0)

    @task
    def ok(self) -> None:
        self.client.get(PATH)
