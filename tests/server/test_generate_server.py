"""generate_image and list_models through a real MCP client, with the built-in model (offline)."""

from __future__ import annotations

import base64
import io

import jsonschema
import pytest
from mcp import Client
from PIL import Image

from mcp_server.server import build_server
from tools.config import JobSettings, LabConfig


@pytest.fixture
def cfg(tmp_path):
    # These tests read the tool's own result: on a busy machine the first call (loading diffusers and the
    # model) can outlast the default wait_s and return a job handle instead (tested in test_jobs_server.py).
    return LabConfig.create(
        tmp_path / "out", [tmp_path], jobs=JobSettings(default_wait_s=600, max_wait_s=600)
    )


@pytest.fixture(params=["legacy", "default"])
def mode(request):
    return {"mode": "legacy"} if request.param == "legacy" else {}


def _client(cfg, mode):
    return Client(build_server(cfg, ("mcp_server.tool_generate",)), **mode)


async def test_tools_are_listed_with_bounds_descriptions_and_output_schemas(cfg, mode):
    async with _client(cfg, mode) as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
    gen = tools["generate_image"]
    props = gen.input_schema["properties"]
    assert gen.input_schema["required"] == ["prompt"]
    assert all(p.get("description") for p in props.values())
    assert props["steps"]["minimum"] == 1 and props["strength"]["maximum"] == 1
    assert {"images", "tokens", "shapes", "timings", "seed", "scheduler"} <= set(
        gen.output_schema["properties"]
    )
    assert tools["list_models"].annotations.read_only_hint is True


async def test_a_prompt_becomes_an_image_through_the_client_offline(cfg, mode, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    async with _client(cfg, mode) as c:
        tool = {t.name: t for t in (await c.list_tools()).tools}["generate_image"]
        res = await c.call_tool(
            "generate_image",
            {"prompt": "a large yellow square in the center on a purple background", "seed": 3},
        )
        listed = await c.call_tool("list_models", {})
    assert not res.is_error, res.content
    data = res.structured_content
    jsonschema.validate(data, tool.output_schema)
    assert data["model"] == "builtin" and data["shapes"]["image"] == [1, 3, 64, 64]
    assert data["images"][0]["uri"].startswith("mllab://outputs/generated/")
    (img,) = [b for b in res.content if b.type == "image"]
    assert Image.open(io.BytesIO(base64.b64decode(img.data))).size == (256, 256)
    assert [m["name"] for m in listed.structured_content["models"]] == ["builtin"]


async def test_bad_arguments_come_back_as_errors_naming_the_argument(cfg, mode):
    async with _client(cfg, mode) as c:
        res = await c.call_tool("generate_image", {"prompt": "a red circle", "model": "sd-xyz"})
        res2 = await c.call_tool("generate_image", {"prompt": "a red circle", "width": 50})
    assert res.is_error and "`model`" in res.content[0].text and "builtin" in res.content[0].text
    assert res2.is_error and "`width`" in res2.content[0].text


async def test_progress_arrives_once_per_denoising_step(cfg, mode):
    seen = []

    async def on_progress(progress, total, message):
        seen.append((progress, total))

    async with _client(cfg, mode) as c:
        res = await c.call_tool(
            "generate_image", {"prompt": "a red circle", "steps": 6}, progress_callback=on_progress
        )
    assert not res.is_error, res.content
    assert seen == [(float(i), 6.0) for i in range(1, 7)]


async def test_a_strength_sweep_through_the_client_returns_labelled_frames_and_refuses_both_strengths(
    cfg, mode
):
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (220, 40, 40)).save(buf, format="PNG")
    init = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    args = {"prompt": "a red circle", "init_image": init, "steps": 4, "strengths": [0.5, 1.0]}
    async with _client(cfg, mode) as c:
        tool = {t.name: t for t in (await c.list_tools()).tools}["generate_image"]
        res = await c.call_tool("generate_image", args)
        both = await c.call_tool("generate_image", {**args, "strength": 0.5})
    assert not res.is_error, res.content
    data = res.structured_content
    jsonschema.validate(data, tool.output_schema)
    assert [p["strength"] for p in data["sweep"]] == [0.5, 1.0] and data["sweep_strip"] is not None
    assert data["frame_labels"][0] == "input" and data["frame_labels"][1].startswith("strength 0.5")
    assert both.is_error and "`strengths`" in both.content[0].text and "not both" in both.content[0].text
