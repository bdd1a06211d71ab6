"""The tiny project's own scenario: read the notes, add one; wait 0.5-1 s."""

from locust import HttpUser, between, task


class NotesUser(HttpUser):
    wait_time = between(0.5, 1)

    @task(3)
    def read(self) -> None:
        self.client.get("/notes/")

    @task
    def write(self) -> None:
        self.client.post("/notes/", data={"text": "hello"})
