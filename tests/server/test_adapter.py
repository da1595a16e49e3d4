"""The adapter: schema from the input model, structured + image output, errors that name the argument."""

from __future__ import annotations

import base64
import io

import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations
from PIL import Image
from pydantic import BaseModel, Field, model_validator

from mcp_server.adapter import register_tool
from tools.common import InlineImage, InvalidArgument, ToolInput, ToolOutput
from tools.config import LabConfig
from tools.images import to_inline_png


class DemoInput(ToolInput):
    n: int = Field(3, ge=1, le=10, description="How many.")
    scale: float = Field(1.0, gt=0, allow_inf_nan=False, description="A positive factor.")
    lo: int = Field(0, description="Lower end.")
    hi: int = Field(5, description="Upper end.")

    @model_validator(mode="after")
    def _order(self):
        if self.lo > self.hi:
            raise InvalidArgument("lo", self.lo, f"must be <= hi ({self.hi})")
        return self


class DemoResult(BaseModel):
    total: float = Field(description="n * scale.")


def _run(args: DemoInput, cfg: LabConfig, reporter) -> ToolOutput:
    if args.n == 9:
        raise RuntimeError("boom")
    for i in range(args.n):
        reporter.progress(i + 1, args.n, f"step {i + 1}")
    png = to_inline_png(Image.new("RGB", (8, 8), (255, 0, 0)))
    return ToolOutput(DemoResult(total=args.n * args.scale), [InlineImage(png, "red")], summary="ok")


@pytest.fixture
def server(tmp_path):
    cfg = LabConfig.create(tmp_path / "out", [tmp_path])
    mcp = MCPServer("t")
    register_tool(
        mcp,
        cfg,
        name="demo",
        title="Demo",
        description="A demo tool.",
        input_model=DemoInput,
        result_model=DemoResult,
        run=_run,
        annotations=ToolAnnotations(readOnlyHint=True),
    )
    return mcp


@pytest.fixture(params=["legacy", "default"])
def mode(request):
    return {"mode": "legacy"} if request.param == "legacy" else {}


async def test_schema_carries_bounds_descriptions_and_output_schema(server, mode):
    async with Client(server, **mode) as c:
        (tool,) = (await c.list_tools()).tools
    props = tool.input_schema["properties"]
    assert props["n"]["minimum"] == 1 and props["n"]["maximum"] == 10
    assert props["n"]["description"] == "How many."
    assert props["scale"]["exclusiveMinimum"] == 0
    assert "ctx" not in props
    assert tool.output_schema["properties"]["total"]["description"] == "n * scale."
    assert tool.annotations.read_only_hint is True
    assert tool.title == "Demo"


async def test_call_returns_structured_content_image_and_progress(server, mode):
    seen = []

    async def on_progress(done, total, message):
        seen.append((done, total, message))

    async with Client(server, **mode) as c:
        res = await c.call_tool("demo", {"n": 4, "scale": 0.5}, progress_callback=on_progress)
    assert not res.is_error
    assert res.structured_content == {"total": 2.0}
    images = [b for b in res.content if b.type == "image"]
    assert len(images) == 1
    assert Image.open(io.BytesIO(base64.b64decode(images[0].data))).size == (8, 8)
    assert [s[0] for s in seen] == [1, 2, 3, 4]
    assert seen[-1][2] == "step 4"


@pytest.mark.parametrize(
    "args, needle",
    [
        ({"n": 11}, "n"),
        ({"scale": -1}, "scale"),
        ({"lo": 7, "hi": 2}, "Invalid `lo` = 7: must be <= hi (2)"),
        ({"n": "many"}, "n"),
    ],
)
async def test_invalid_arguments_get_an_error_naming_the_argument(server, mode, args, needle):
    async with Client(server, **mode) as c:
        res = await c.call_tool("demo", args)
    assert res.is_error
    assert needle in res.content[0].text


async def test_unexpected_exception_is_reported_and_server_keeps_serving(server, mode):
    async with Client(server, **mode) as c:
        res = await c.call_tool("demo", {"n": 9})
        assert res.is_error
        assert "Internal error in demo: RuntimeError: boom" in res.content[0].text
        again = await c.call_tool("demo", {"n": 2})
        assert not again.is_error and again.structured_content == {"total": 2.0}
