"""The bare user with the harness's recording installed: same code path as the scenario."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from loadtests import listeners
from loadtests.bare import BareUser

__all__ = ["BareUser"]

listeners.install()
