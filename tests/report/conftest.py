"""The report pages' fixtures: a tab in headless Chromium (browser.py), and a sample report."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .browser import CHROMIUM, STARTUP_TIMEOUT, Page, devtools_port


@pytest.fixture
def chromium_page(tmp_path: Path, setup_tool) -> Iterator[Page]:
    setup_tool(CHROMIUM, "Debian's chromium")
    import websocket  # websocket-client, a dev dependency: drives Chromium
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    with (tmp_path / "chromium.log").open("wb") as log:
        process = subprocess.Popen(
            [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--remote-debugging-port=0", "--window-size=1400,2200", "about:blank"],
            stdout=log, stderr=subprocess.STDOUT)
    try:
        port = devtools_port(profile, process)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=STARTUP_TIMEOUT) as answer:
            target = next(t for t in json.load(answer) if t["type"] == "page")
        socket = websocket.create_connection(target["webSocketDebuggerUrl"], timeout=STARTUP_TIMEOUT,
                                             suppress_origin=True)  # Chromium refuses unlisted origins
        try:
            yield Page(socket)
        finally:
            socket.close()
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def sample_report() -> dict[str, Any]:
    return json.loads((Path(__file__).parent / "sample_report.json").read_text())
