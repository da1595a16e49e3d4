"""tensorize_image through a real MCP client, in both protocol eras (legacy handshake and default)."""

from __future__ import annotations

import base64
import io

import jsonschema
import numpy as np
import pytest
from mcp import Client
from PIL import Image

from mcp_server.server import build_server
from tools.config import LabConfig


@pytest.fixture
def cfg(tmp_path):
    return LabConfig.create(tmp_path / "out", [tmp_path])


@pytest.fixture
def photo(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture(params=["legacy", "default"])
def mode(request):
    return {"mode": "legacy"} if request.param == "legacy" else {}


def _client(cfg, mode):
    return Client(build_server(cfg, ("mcp_server.tool_tensorize",)), **mode)


async def test_tool_is_listed_with_title_annotations_bounds_and_output_schema(cfg, mode):
    async with _client(cfg, mode) as c:
        (tool,) = [t for t in (await c.list_tools()).tools if t.name == "tensorize_image"]
    assert tool.title and "tensor" in tool.description
    assert tool.annotations.read_only_hint is False and tool.annotations.destructive_hint is False
    assert tool.annotations.idempotent_hint is True and tool.annotations.open_world_hint is False
    props = tool.input_schema["properties"]
    assert tool.input_schema["required"] == ["image"]
    assert props["preview_size"]["minimum"] == 1 and props["preview_size"]["maximum"] == 16
    assert all(p.get("description") for p in props.values())
    out = tool.output_schema["properties"]
    assert {"shape", "dtype", "layout", "stats", "preview", "torch_code", "saved", "size_bytes"} <= set(out)


async def test_call_returns_structured_content_matching_the_schema_and_an_image(cfg, photo, mode):
    async with _client(cfg, mode) as c:
        (tool,) = (await c.list_tools()).tools
        res = await c.call_tool(
            "tensorize_image",
            {"image": str(photo), "normalize": "imagenet", "batch": True, "save": "safetensors"},
        )
    assert not res.is_error, res.content
    data = res.structured_content
    jsonschema.validate(data, tool.output_schema)
    assert data["shape"] == [1, 3, 12, 16] and data["layout"] == "NCHW" and data["dtype"] == "torch.float32"
    assert data["saved"]["uri"].startswith("mllab://outputs/tensors/")
    images = [b for b in res.content if b.type == "image"]
    assert len(images) == 1 and images[0].mime_type == "image/png"
    png = base64.b64decode(images[0].data)
    assert max(Image.open(io.BytesIO(png)).size) <= 1024 and len(png) < 1024 * 1024


async def test_base64_input_works_through_the_client(cfg, photo, mode):
    b64 = base64.b64encode(photo.read_bytes()).decode()
    async with _client(cfg, mode) as c:
        res = await c.call_tool(
            "tensorize_image", {"image": f"data:image/png;base64,{b64}", "normalize": "none"}
        )
    assert not res.is_error, res.content
    assert res.structured_content["dtype"] == "torch.uint8"


@pytest.mark.parametrize(
    ("args", "argument"),
    [
        ({"dtype": "uint8"}, "dtype"),
        ({"preview_size": 40}, "preview_size"),
        ({"normalize": "custom", "mean": [0.5, 0.5, 0.5], "std": [0.5, -1, 0.5]}, "std"),
        ({"center_crop": 500}, "center_crop"),
        ({"save": "npy", "dtype": "bfloat16"}, "save"),
    ],
)
async def test_invalid_call_is_an_error_naming_the_argument(cfg, photo, mode, args, argument):
    async with _client(cfg, mode) as c:
        res = await c.call_tool("tensorize_image", {"image": str(photo), **args})
    assert res.is_error
    text = " ".join(b.text for b in res.content if b.type == "text")
    assert argument in text, text


async def test_path_outside_the_allowed_folders_is_an_error_naming_image(cfg, mode, tmp_path_factory):
    other = tmp_path_factory.mktemp("elsewhere") / "x.png"
    Image.new("RGB", (4, 4)).save(other)
    async with _client(cfg, mode) as c:
        res = await c.call_tool("tensorize_image", {"image": str(other)})
    assert res.is_error
    text = " ".join(b.text for b in res.content if b.type == "text")
    assert "`image`" in text and "outside the allowed folders" in text
