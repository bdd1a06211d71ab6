"""The polls scenario: open a poll form, submit a random vote, read the results (polls.py);
wait 1-2 s. With GB_ARRIVAL=request, each iteration is one GET of GB_ARRIVAL_PATH instead.

Standalone: `locust -f loadtests/locustfile.py --host http://127.0.0.1:8080` (add
`,loadtests/shape.py` for user steps). Under the harness, GB_* variables turn on per-second
recording (listeners.py) and make the master stop itself exactly when the steady window ends.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from locust import FastHttpUser, task

# Locust loads this file by path; make the package importable wherever Locust was started from.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from loadtests import listeners, polls, slowupload

# Percent of users that are slow uploaders (loadtests/slowupload.py); 0: voters only.
SLOW_UPLOAD_PCT = int(os.environ.get("GB_SLOW_UPLOAD_PCT", "0"))


class PollUser(FastHttpUser):
    wait_time = listeners.recorded_between(1, 2)
    weight = 100 - SLOW_UPLOAD_PCT
    network_timeout = polls.CLIENT_TIMEOUT_S
    connection_timeout = polls.CLIENT_TIMEOUT_S

    @task
    def vote(self) -> None:
        try:
            polls.iteration(self.client)
        finally:
            # Every iteration counts, finished or cut short: Little's law needs the cycle rate.
            rec = listeners.recorder()
            if rec is not None:
                rec.task_done()


if SLOW_UPLOAD_PCT > 0:

    class SlowUploadUser(slowupload.SlowUploader):
        weight = SLOW_UPLOAD_PCT
        abstract = False


listeners.install()
