"""Print the runtime pins of pyproject.toml for the app image (used by docker/app.Dockerfile).

The harness's own report and Docker libraries are left out: the containers run the app servers
and Locust, never the analysis. Everything else is installed at exactly the local version.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

HARNESS_ONLY = {"pandas", "matplotlib", "docker"}


def runtime_pins(pyproject: Path) -> list[str]:
    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    return [d for d in deps if re.split(r"[=<>!~\[; ]", d, maxsplit=1)[0] not in HARNESS_ONLY]


if __name__ == "__main__":
    print("\n".join(runtime_pins(Path(sys.argv[1]))))
