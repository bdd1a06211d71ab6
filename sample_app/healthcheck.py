"""The container health check of the app services: exit 0 when /healthz answers 200.

A script, not `python -c "..."`: Podman's API splits an exec-form check's arguments at spaces.
Usage: python healthcheck.py PORT
"""

import sys
import urllib.request

port = int(sys.argv[1])
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3) as response:
        sys.exit(0 if response.status == 200 else 1)
except OSError:
    sys.exit(1)
