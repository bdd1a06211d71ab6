"""The harness's recording, for a user's own scenario: `locust -f theirs.py,loadtests/harness.py`.

It defines no users; it installs the same per-second recording and window-end stop that the
polls scenario uses, so a bring-your-own-app run is measured exactly like the sample app.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from loadtests import listeners

listeners.install()
