"""The polls scenario under the open model (openmodel.py): visitors arrive at GB_RATE per second
(Poisson, seeded by GB_ARRIVAL_SEED), each runs one polls session with no think time, or with
GB_ARRIVAL=request one GET of GB_ARRIVAL_PATH; at most GB_MAX_INFLIGHT sessions in flight, the
arrivals beyond it dropped and counted.

    GB_RATE=50 locust -f loadtests/locustfile_open.py --headless --users 1 \\
        --host http://127.0.0.1:8080
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Locust loads this file by path; make the package importable wherever Locust was started from.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from loadtests import listeners, openmodel
from loadtests.arrivals import OpenConfig
from loadtests.openmodel import OpenModelUser

__all__ = ["OpenModelUser"]

listeners.install()
openmodel.install(OpenConfig.from_env(os.environ))
