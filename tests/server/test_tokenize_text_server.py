"""tokenize_text through a real MCP client: strawberry and a Chinese sentence, in both protocol eras."""

from __future__ import annotations

import jsonschema
import pytest
from mcp import Client

from mcp_server.server import build_server
from tools.config import LabConfig


@pytest.fixture(params=["legacy", "default"])
def mode(request):
    return {"mode": "legacy"} if request.param == "legacy" else {}


async def test_strawberry_and_chinese_come_back_as_tokens_a_picture_and_schema_valid_data(tmp_path, mode):
    cfg = LabConfig.create(tmp_path / "out", [tmp_path])
    async with Client(build_server(cfg, ("mcp_server.tool_tokenize_text",)), **mode) as c:
        (tool,) = (await c.list_tools()).tools
        res = await c.call_tool(
            "tokenize_text",
            {"text": "strawberry", "compare_text": "草莓", "tokenizer": "bpe", "bpe_merges": 200},
        )
        bad = await c.call_tool("tokenize_text", {"text": "", "tokenizer": "chars"})
    assert not res.is_error, res.content
    jsonschema.validate(res.structured_content, tool.output_schema)
    assert "".join(t["text"] for t in res.structured_content["main"]["tokens"]) == "strawberry"
    assert res.structured_content["compare"]["n_bytes"] == 6
    assert [b.type for b in res.content].count("image") == 1
    assert bad.is_error and "text" in bad.content[0].text
