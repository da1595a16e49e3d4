"""A misspelt or unknown argument is refused by name, never silently ignored."""

from __future__ import annotations

import pytest
from mcp import Client

from mcp_server.server import build_server
from tools.config import LabConfig


@pytest.fixture
def server(tmp_path):
    return build_server(LabConfig.create(tmp_path / "out", [tmp_path]), ("mcp_server.tool_explain",))


@pytest.mark.parametrize("mode", [{"mode": "legacy"}, {}])
async def test_unknown_argument_is_refused_naming_it_and_the_allowed_ones(server, mode):
    async with Client(server, **mode) as c:
        res = await c.call_tool("explain_concept", {"concept": "relu", "langauge": "zh"})
        assert res.is_error
        text = res.content[0].text
        assert "`langauge`" in text and "language" in text and "concept" in text
        ok = await c.call_tool("explain_concept", {"concept": "relu", "language": "zh", "detail": "summary"})
        assert not ok.is_error and ok.structured_content["id"] == "relu"


async def test_output_path_style_extra_argument_is_refused(server):
    async with Client(server, mode="legacy") as c:
        res = await c.call_tool("explain_concept", {"concept": "relu", "output_path": "/etc/passwd"})
    assert res.is_error and "`output_path`" in res.content[0].text
