"""Open report.html in a real headless Chromium (Debian's package, installed by `make test`'s
own setup) over the DevTools protocol: no console errors, no network requests, the failure
table has the right cells, and the screenshot is not blank."""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import matplotlib.image
import pytest
import websocket

from gatewaybench.report.render import render_run

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "run-small"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
    "--window-size=1280,1600",
]  # fmt: skip


class DevTools:
    """A minimal DevTools client: commands by id, events kept for inspection."""

    def __init__(self, ws_url: str) -> None:
        self.ws = websocket.create_connection(ws_url, timeout=30)
        self.events: list[dict[str, Any]] = []
        self._id = 0

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self._id:
                assert "error" not in msg, msg
                return dict(msg.get("result", {}))
            self.events.append(msg)

    def wait_for(self, method: str, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while not any(e.get("method") == method for e in self.events):
            assert time.monotonic() < deadline, f"no {method} within {timeout_s} s"
            self.events.append(json.loads(self.ws.recv()))


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[DevTools]:
    binary = shutil.which("chromium")
    assert binary, "chromium missing: `make test` installs it (scripts/install-system-deps.sh)"
    profile = tmp_path / "profile"
    proc = subprocess.Popen([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not port_file.is_file() or not port_file.read_text().strip():
            assert proc.poll() is None and time.monotonic() < deadline, "chromium did not start"
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
            pages = [t for t in json.load(resp) if t["type"] == "page"]
        tools = DevTools(pages[0]["webSocketDebuggerUrl"])
        yield tools
        tools.ws.close()
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _is_error(event: dict[str, Any]) -> bool:
    method, params = event.get("method"), event.get("params", {})
    if method == "Runtime.exceptionThrown":
        return True
    if method == "Runtime.consoleAPICalled":
        return bool(params["type"] == "error")
    return method == "Log.entryAdded" and params["entry"]["level"] == "error"


def test_report_opens_cleanly_in_chromium(browser: DevTools, tmp_path: Path) -> None:
    run_dir = tmp_path / "20261121T035239Z-fixture"
    shutil.copytree(FIXTURE, run_dir)
    report = render_run(run_dir)[0]
    for domain in ("Network", "Runtime", "Log", "Page"):
        browser.send(f"{domain}.enable")
    browser.send("Page.navigate", url=report.as_uri())
    browser.wait_for("Page.loadEventFired")

    requests = [e["params"]["request"]["url"] for e in browser.events
                if e.get("method") == "Network.requestWillBeSent"]  # fmt: skip
    assert requests, "the page load itself should be observed"
    assert all(u.startswith(("file:", "data:")) for u in requests), requests
    errors = [e for e in browser.events if _is_error(e)]
    assert not errors, errors

    script = """JSON.stringify([...document.querySelectorAll('table')]
        .filter(t => t.caption && t.caption.textContent.startsWith('Failure %'))
        .map(t => [...t.querySelectorAll('tbody tr')].map(r =>
            [...r.children].map(c => c.textContent.trim()))))"""
    result = browser.send("Runtime.evaluate", expression=script, returnByValue=True)
    (table,) = json.loads(result["result"]["value"])
    assert table == [["gunicorn", "0.0", "0.0*"], ["uvicorn", "0.0", "28.0"]]

    shot = browser.send("Page.captureScreenshot", format="png")
    pixels = matplotlib.image.imread(io.BytesIO(base64.b64decode(shot["data"])), format="png")
    assert pixels.shape[0] > 100 and pixels.std() > 0.05, "the screenshot is blank"
