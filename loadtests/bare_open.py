"""The open model in request mode on nginx's `return 200` location, recorded: the generator's
own speed at a given arrival rate (GB_RATE, GB_MAX_INFLIGHT; scripts/bench_generator.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from loadtests import listeners, openmodel
from loadtests.arrivals import OpenConfig
from loadtests.bare import PATH
from loadtests.openmodel import OpenModelUser

__all__ = ["OpenModelUser"]

listeners.install()
openmodel.install(OpenConfig.from_env(os.environ, arrival="request", path=PATH))
