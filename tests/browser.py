"""A real headless browser for tests: Debian's ``chromium``, driven over the DevTools
protocol (CDP) with ``websocket-client``.

``open_page(path)`` loads a local HTML file from ``file://`` and reports what a user's
browser would have done: console errors and uncaught exceptions, every network request
(any URL that is not ``file:`` or ``data:``), the value of a JavaScript expression over
the loaded DOM, and a PNG screenshot. Tests call :func:`require_browser` first, which
skips with a reason where chromium or websocket-client is absent.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

NAMES = ("chromium", "chromium-browser", "google-chrome")
FLAGS = (
    "--headless",
    "--no-sandbox",  # root in CI containers
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
    "--hide-scrollbars",
    "--remote-debugging-port=0",
)


def require_browser() -> str:
    """The chromium executable, or skip the test saying why."""
    pytest.importorskip("websocket", reason="websocket-client (dev extra) drives the browser")
    for name in NAMES:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no chromium here (.ci/run installs Debian's chromium where it can)")


@dataclass
class PageRun:
    """What loading a page did."""

    errors: list[str] = field(default_factory=list)  # console errors, exceptions
    requests: list[str] = field(default_factory=list)  # network URLs (not file:, data:)
    value: Any = None  # the evaluated expression's result
    screenshot: Path | None = None


class _CDP:
    def __init__(self, url: str) -> None:
        import websocket

        self.ws = websocket.create_connection(url, timeout=60, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        wanted = self.next_id
        self.ws.send(json.dumps({"id": wanted, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == wanted:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            self.events.append(message)

    def wait_for(self, method: str, timeout: float = 60) -> None:
        if any(e.get("method") == method for e in self.events):
            return
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            message = json.loads(self.ws.recv())
            self.events.append(message)
            if message.get("method") == method:
                return
        raise TimeoutError(method)

    def close(self) -> None:
        self.ws.close()


def _start(browser: str, profile: Path) -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen(
        [browser, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    port_file = profile / "DevToolsActivePort"
    end = time.monotonic() + 30
    while not port_file.is_file() or not port_file.read_text().strip():
        if proc.poll() is not None or time.monotonic() > end:
            proc.kill()
            raise RuntimeError(f"{browser} did not start (exit {proc.poll()})")
        time.sleep(0.1)
    port = port_file.read_text().split()[0]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
        targets = json.loads(resp.read())
    page = next(t for t in targets if t.get("type") == "page")
    return proc, str(page["webSocketDebuggerUrl"])


def open_page(
    path: Path, expression: str, *, screenshot: Path | None = None, width: int = 1280
) -> PageRun:
    """Load ``path`` from file://, settle, evaluate ``expression`` (its JSON value)."""
    browser = require_browser()
    with tempfile.TemporaryDirectory(prefix="vla-chromium-") as tmp:
        proc, ws_url = _start(browser, Path(tmp))
        cdp = None
        try:
            cdp = _CDP(ws_url)
            for domain in ("Runtime", "Log", "Network", "Page"):
                cdp.call(f"{domain}.enable")
            cdp.call(
                "Emulation.setDeviceMetricsOverride",
                width=width,
                height=900,
                deviceScaleFactor=1,
                mobile=False,
            )
            cdp.call("Page.navigate", url=path.resolve().as_uri())
            cdp.wait_for("Page.loadEventFired")
            cdp.call("Runtime.evaluate", expression="0", awaitPromise=True)  # settle
            run = PageRun()
            result = cdp.call("Runtime.evaluate", expression=expression, returnByValue=True)
            run.value = result.get("result", {}).get("value")
            if screenshot is not None:
                shot = cdp.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
                screenshot.write_bytes(base64.b64decode(shot["data"]))
                run.screenshot = screenshot
            _collect(cdp.events, run)
            return run
        finally:
            if cdp is not None:
                with contextlib.suppress(Exception):  # the browser may already be gone
                    cdp.call("Browser.close")
                cdp.close()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _collect(events: list[dict[str, Any]], run: PageRun) -> None:
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            run.errors.append(json.dumps(params.get("exceptionDetails", {}))[:500])
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            run.errors.append(json.dumps(params.get("args", []))[:500])
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            run.errors.append(str(params["entry"].get("text"))[:500])
        elif method == "Network.requestWillBeSent":
            url = str(params.get("request", {}).get("url", ""))
            if not url.startswith(("file:", "data:")):
                run.requests.append(url)
