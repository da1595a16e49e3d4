"""Helpers of the browser tests: the lab server in a subprocess, the checked page, where screenshots go."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabServer:
    def __init__(self, tmp: Path, *flags: str):
        self.port = _free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        self.output_dir = tmp / "out"
        self.images = tmp / "images"  # a folder the server may read images from
        self.images.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mcp_server", "--transport", "streamable-http", "--port", str(self.port),
             "--output-dir", str(self.output_dir), "--allow-dir", str(self.images), *flags],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"server exited: {self.proc.stderr.read().decode(errors='replace')[-3000:]}"
                )
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("server did not start listening")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def chromium_path() -> str:
    path = os.environ.get("ML_LAB_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.fail("no chromium: apt-get install -y chromium (or set ML_LAB_CHROMIUM)")
    return path


class Page:
    """A page whose every request is checked: those to the server pass, any other is recorded and refused."""

    def __init__(self, browser, origin: str):
        self.origin = origin
        self.foreign: list[str] = []
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.context = browser.new_context(viewport={"width": 1000, "height": 800})
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _route(self, route) -> None:
        url = route.request.url
        self.requests.append(url)
        if url.startswith(self.origin + "/"):
            route.continue_()
        else:
            self.foreign.append(url)
            route.abort()


def screenshot_dir(tmp_path: Path) -> Path:
    """docs/images when ML_LAB_WRITE_SCREENSHOTS=1 (to refresh the README's pictures), else a temporary folder."""
    return ROOT / "docs" / "images" if os.environ.get("ML_LAB_WRITE_SCREENSHOTS") == "1" else tmp_path
