"""Launcher tests. Those marked `launch` need tools installed from the network (uv, the MCP Inspector):
`.ci/launch-test` installs them and runs `pytest -m launch` with ML_LAB_LAUNCH_TESTS=1, which turns a
missing tool into a failure instead of a skip."""

from __future__ import annotations

import pytest
from launch_support import REQUIRED


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "launch: end-to-end launcher tests (uvx, npx, MCP Inspector); .ci/launch-test"
    )


def pytest_collection_modifyitems(config, items):
    if REQUIRED:
        return
    skip = pytest.mark.skip(
        reason="launcher end-to-end test: run .ci/launch-test (sets ML_LAB_LAUNCH_TESTS=1)"
    )
    for item in items:
        if item.get_closest_marker("launch") is not None:
            item.add_marker(skip)
