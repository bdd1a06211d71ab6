"""What the scenario reads from the polls pages. Pure (no locust import): the harness's own
pre-load check (gatewaybench/stack/verify.py) uses the same patterns, and a test keeps the two
in step, because the harness cannot import this package when installed elsewhere."""

from __future__ import annotations

import re

CSRF_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
CHOICE_RE = re.compile(r'name="choice" id="choice\d+" value="(\d+)"')
