"""The tiny project's own scenario: read the notes, add one; wait 0.5-1 s.

FastHttpUser, as load generators should: requests-based HttpUser spends milliseconds of its
own per request, which the harness's nginx cross-check then reports as a latency mismatch.
"""

from locust import FastHttpUser, between, task


class NotesUser(FastHttpUser):
    wait_time = between(0.5, 1)

    @task(3)
    def read(self) -> None:
        self.client.get("/notes/")

    @task
    def write(self) -> None:
        self.client.post("/notes/", data={"text": "hello"})
