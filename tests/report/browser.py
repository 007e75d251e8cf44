"""A page in headless Chromium (Debian's package), driven over the DevTools protocol.

The protocol, not `--enable-logging` output, tells console errors apart: it reports console calls, uncaught
exceptions and browser-side errors (CSP violations, failed loads) as typed events.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
STARTUP_TIMEOUT = 30.0  # seconds: a bound on every wait for the browser


class Page:
    """One tab: navigate, evaluate, screenshot; every console error and exception it saw is kept."""

    def __init__(self, socket: Any) -> None:
        self._socket = socket
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        self._socket.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self._socket.recv())
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def open(self, url: str) -> None:
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable")
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not load within {STARTUP_TIMEOUT} s")
            self.events.append(json.loads(self._socket.recv()))
        self.evaluate("new Promise(r => requestAnimationFrame(() => setTimeout(r, 200)))")  # late errors land

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path) -> Path:
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))
        return path

    def console_errors(self) -> list[str]:
        errors = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                errors.append(details.get("exception", {}).get("description") or details.get("text", ""))
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                errors.append(" ".join(str(arg.get("value", arg.get("description"))) for arg in params["args"]))
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                errors.append(params["entry"].get("text", ""))
        return errors


def devtools_port(profile: Path, process: subprocess.Popen[bytes]) -> int:
    """Chromium writes the port it picked (--remote-debugging-port=0) into the profile when it is ready."""
    active = profile / "DevToolsActivePort"
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not (active.exists() and active.read_text().strip()):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"chromium did not start (exit code {process.poll()})")
        time.sleep(0.1)
    return int(active.read_text().split()[0])
