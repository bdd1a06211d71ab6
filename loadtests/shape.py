"""User steps as a Locust LoadTestShape, for running the scenario by hand:

    GB_STEPS=100,200,300 GB_STEP_SECONDS=60 \
        locust -f loadtests/locustfile.py,loadtests/shape.py --headless --host http://127.0.0.1:8080

The harness runs one Locust process per step instead (each step then starts from the same state,
drains, and is audited against the database on its own); this shape is for exploration.
"""

from __future__ import annotations

import os

from locust import LoadTestShape


def parse_steps(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


class StepShape(LoadTestShape):
    steps = parse_steps(os.environ.get("GB_STEPS", "100,200,300,400,500,600,700"))
    step_seconds = float(os.environ.get("GB_STEP_SECONDS", "60"))
    spawn_rate = float(os.environ.get("GB_SPAWN_RATE", "50"))

    def tick(self) -> tuple[int, float] | None:
        run_time: float = self.get_run_time()
        index = int(run_time // self.step_seconds)
        if index >= len(self.steps):
            return None
        return self.steps[index], self.spawn_rate
