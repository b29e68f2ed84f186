"""Headless Chromium driven over the DevTools protocol, for the end-to-end test.

Streamlit draws pages in the browser from messages on a websocket, which
``chromium --dump-dom --virtual-time-budget`` does not wait for (virtual time does not
count websocket traffic). So the browser runs with a debugging port, and the test polls
the page's text until what it expects is there, then dumps the DOM and takes a
screenshot, as ``--dump-dom`` and ``--screenshot`` would.
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


class Browser:
    """One headless Chromium with one page; use as a context manager."""

    def __init__(self, executable: str, profile_dir: Path, width: int = 1400,
                 height: int = 2000) -> None:
        self.process = subprocess.Popen(
            [executable, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-dev-shm-usage", "--no-first-run", "--hide-scrollbars",
             "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
             f"--user-data-dir={profile_dir}", f"--window-size={width},{height}",
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._ids = itertools.count(1)
        self._stack = ExitStack()
        try:
            port = _devtools_port(profile_dir / "DevToolsActivePort", self.process)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list",
                                        timeout=10) as reply:
                targets = json.load(reply)
            page = next(t for t in targets if t.get("type") == "page")
            self.socket: ClientConnection = self._stack.enter_context(
                connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=10))
        except BaseException:
            self.close()
            raise
        self.resize(width, height)

    def resize(self, width: int, height: int) -> None:
        """The viewport's size: a screenshot shows the viewport, so a long page needs a
        tall one (Streamlit scrolls inside the page, not the document)."""
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    def call(self, method: str, params: dict[str, Any] | None = None,
             timeout: float = 30.0) -> dict[str, Any]:
        request_id = next(self._ids)
        self.socket.send(json.dumps({"id": request_id, "method": method,
                                     "params": params or {}}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self.socket.recv(timeout=max(deadline - time.monotonic(),
                                                              0.01)))
            if message.get("id") == request_id:  # events in between are not needed
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result

    def evaluate(self, expression: str) -> Any:
        reply = self.call("Runtime.evaluate", {"expression": expression,
                                               "returnByValue": True})
        return reply.get("result", {}).get("value")

    def open(self, url: str, expect: Iterable[str], *, charts: int = 0,
             timeout: float = 60.0) -> str:
        """Go to ``url`` and wait until its text holds every string of ``expect`` and at
        least ``charts`` charts are drawn; returns the page text."""
        wanted = list(expect)
        self.call("Page.navigate", {"url": url})
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.evaluate("document.body ? document.body.innerText : ''") or ""
            drawn = self.evaluate(
                "document.querySelectorAll('.vega-embed canvas, .vega-embed svg').length") or 0
            running = self.evaluate("!!document.querySelector('[data-testid=stStatusWidget]')")
            if all(w in text for w in wanted) and drawn >= charts and not running:
                time.sleep(0.5)  # let the last chart finish painting
                return str(self.evaluate("document.body.innerText"))
            time.sleep(0.25)
        missing = [w for w in wanted if w not in text]
        raise TimeoutError(f"{url}: after {timeout:.0f} s the page lacks {missing} "
                           f"(or {charts} charts); its text: {text[:2000]!r}")

    def dom(self) -> str:
        return str(self.evaluate("document.documentElement.outerHTML"))

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", {"format": "png"})["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            self._stack.close()
        finally:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _devtools_port(path: Path, process: subprocess.Popen[bytes]) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if path.exists() and (lines := path.read_text().splitlines()):
            return int(lines[0])
        if process.poll() is not None:
            raise RuntimeError(f"chromium exited with status {process.returncode} at start")
        time.sleep(0.05)
    raise TimeoutError("chromium did not open its debugging port within 30 s")
