"""Files the server wrote are readable as mllab://outputs/<category>/<name>; nothing else is."""

from __future__ import annotations

import base64

import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer

from mcp_server.server import _register_outputs
from tools.config import LabConfig
from tools.paths import new_output_path, output_uri


@pytest.fixture
def cfg(tmp_path):
    return LabConfig.create(tmp_path / "out", [tmp_path])


@pytest.fixture
def server(cfg):
    mcp = MCPServer("t")
    _register_outputs(mcp, cfg)
    return mcp


async def test_output_file_is_readable_by_its_uri(cfg, server):
    path = new_output_path(cfg, "images", ".png")
    path.write_bytes(b"\x89PNG fake bytes")
    meta = new_output_path(cfg, "runs", ".json")
    meta.write_text('{"a": 1}')
    async with Client(server, mode="legacy") as c:
        res = await c.read_resource(output_uri(cfg, path))
        assert base64.b64decode(res.contents[0].blob) == b"\x89PNG fake bytes"
        res = await c.read_resource(output_uri(cfg, meta))
        assert res.contents[0].text == '{"a": 1}'


@pytest.mark.parametrize(
    "uri",
    [
        "mllab://outputs/images/..%2F..%2Fsecret.txt",
        "mllab://outputs/etc/passwd",
        "mllab://outputs/images/missing.png",
    ],
)
async def test_output_resource_refuses_anything_else(cfg, server, tmp_path, uri):
    (tmp_path / "secret.txt").write_text("top secret")
    async with Client(server, mode="legacy") as c:
        with pytest.raises(Exception) as err:
            await c.read_resource(uri)
    assert "top secret" not in str(err.value)


def test_output_paths_are_generated_under_the_output_dir(cfg):
    a = new_output_path(cfg, "tensors", ".pt")
    b = new_output_path(cfg, "tensors", ".pt")
    assert a != b
    assert a.parent == cfg.output_dir / "tensors"
    with pytest.raises(ValueError):
        new_output_path(cfg, "../escape", ".pt")
    with pytest.raises(ValueError):
        new_output_path(cfg, "images", "/../../x")
