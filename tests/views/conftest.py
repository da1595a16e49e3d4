"""Browser-test fixtures: the real server over streamable HTTP (the CLI in a subprocess) and a headless Chromium.

Chromium is Debian's `chromium` package driven by Playwright for Python through its executable path
(`playwright install` cannot download browsers here); `.ci/run` installs it. The browser runs with the network
cut: every host name except the server's loopback address resolves to nothing.
"""

from __future__ import annotations

import os

import pytest
from browser_support import LabServer, Page, chromium_path


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory):
    server = LabServer(tmp_path_factory.mktemp("lab"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extra)")
    with sync_api.sync_playwright() as p:
        args = ["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]  # the network, cut
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            args.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox
        b = p.chromium.launch(executable_path=chromium_path(), args=args)
        yield b
        b.close()


@pytest.fixture
def page_factory(browser):
    pages: list[Page] = []

    def make(origin: str) -> Page:
        pages.append(Page(browser, origin))
        return pages[-1]

    yield make
    for p in pages:
        p.context.close()
