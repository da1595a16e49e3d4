"""train_toy_mlp through a real MCP client (in memory), in both protocol eras: schema, progress, picture,
refusals, prompt cancellation, and the mllab://runs resources."""

from __future__ import annotations

import base64
import io
import json
import threading
import time

import anyio
import jsonschema
import pytest
from mcp import Client
from PIL import Image

import tools.toy_mlp.lab as lab
from mcp_server.server import build_server
from tools.config import LabConfig

SMALL = {
    "dataset": "circle",
    "hidden_layers": [8],
    "activation": "relu",
    "learning_rate": 0.03,
    "epochs": 30,
    "n_samples": 200,
}


@pytest.fixture
def cfg(tmp_path):
    return LabConfig.create(tmp_path / "out")


@pytest.fixture(params=["legacy", "default"])
def mode(request):
    return {"mode": "legacy"} if request.param == "legacy" else {}


def _client(cfg, mode):
    return Client(build_server(cfg, ("mcp_server.tool_toy_mlp",)), **mode)


async def test_tool_is_listed_with_bounds_descriptions_and_output_schema(cfg, mode):
    async with _client(cfg, mode) as c:
        (tool,) = (await c.list_tools()).tools
    assert tool.name == "train_toy_mlp" and "playground" in tool.description.lower()
    props = tool.input_schema["properties"]
    assert all(p.get("description") for p in props.values())
    assert props["noise"]["maximum"] == 0.5 and props["train_ratio"]["minimum"] == 0.1
    assert "required" not in tool.input_schema or not tool.input_schema["required"]
    assert {"runs", "best_run", "picture_uri", "weights_uri"} <= set(tool.output_schema["properties"])


async def test_call_reports_progress_and_returns_numbers_and_an_inline_picture(cfg, mode):
    progress = []

    async def on_progress(done, total, message):
        progress.append((done, total, message))

    async with _client(cfg, mode) as c:
        (tool,) = (await c.list_tools()).tools
        res = await c.call_tool("train_toy_mlp", {**SMALL, "variants": [{}, {"activation": "tanh"}]},
                                progress_callback=on_progress)  # fmt: skip
    assert not res.is_error
    jsonschema.validate(res.structured_content, tool.output_schema)
    data = res.structured_content
    assert [r["name"] for r in data["runs"]] == ["base", "activation=tanh"]
    assert data["runs"][0]["test_accuracy"] >= 0.9
    (image,) = [b for b in res.content if b.type == "image"]
    png = base64.b64decode(image.data)
    assert image.mime_type == "image/png" and max(Image.open(io.BytesIO(png)).size) <= 1024
    assert progress and progress[-1][0] == progress[-1][1] == 60
    assert any("epoch" in (m or "") for _, _, m in progress)


async def test_bad_arguments_come_back_as_errors_naming_the_argument(cfg, mode):
    async with _client(cfg, mode) as c:
        res = await c.call_tool("train_toy_mlp", {"hidden_layers": [8, 4], "residual": True})
        assert res.is_error and "`hidden_layers` = [8, 4]" in res.content[0].text
        res = await c.call_tool("train_toy_mlp", {"dataset": "custom", "points": [[0, 0, 0.5]] * 20})
        assert res.is_error and "`points[0]`" in res.content[0].text and "0 or 1" in res.content[0].text
        res = await c.call_tool("train_toy_mlp", {"dataset": "spirals"})
        assert res.is_error and "dataset" in res.content[0].text and "spiral" in res.content[0].text


async def test_cancelling_a_long_run_stops_training_within_a_second(cfg, mode, monkeypatch):
    ended: list[tuple[float, str]] = []
    real = lab.train_toy_mlp

    def watched(args, cfg_, reporter):
        try:
            return real(args, cfg_, reporter)
        except BaseException as exc:
            ended.append((time.monotonic(), type(exc).__name__))
            raise

    monkeypatch.setattr(lab, "train_toy_mlp", watched)
    long_run = {"epochs": 1500, "n_samples": 2000, "hidden_layers": [32, 32], "time_budget_s": 30}
    async with _client(cfg, mode) as c:
        with anyio.move_on_after(1.0):
            await c.call_tool("train_toy_mlp", long_run)
        cancelled_at = time.monotonic()
        for _ in range(100):
            if ended:
                break
            await anyio.sleep(0.02)
    assert ended, "training was still running 2 s after the cancel"
    latency = ended[0][0] - cancelled_at
    assert ended[0][1] == "Cancelled" and latency < 1.0, latency
    assert not [t for t in threading.enumerate() if "watched" in repr(t)]


async def test_runs_resource_lists_the_saved_run_and_reads_it_back(cfg, mode):
    async with _client(cfg, mode) as c:
        res = await c.call_tool("train_toy_mlp", SMALL)
        run_id = res.structured_content["run_id"]
        index = json.loads((await c.read_resource("mllab://runs")).contents[0].text)
        assert index[0]["run_id"] == run_id and index[0]["runs"][0]["test_accuracy"] is not None
        one = json.loads((await c.read_resource(f"mllab://runs/{run_id}")).contents[0].text)
        assert one["result"]["run_id"] == run_id and one["arguments"]["dataset"] == "circle"
        picture = await c.read_resource(res.structured_content["picture_uri"])
        assert base64.b64decode(picture.contents[0].blob)[:8] == b"\x89PNG\r\n\x1a\n"
        with pytest.raises(Exception, match="no saved run"):
            await c.read_resource("mllab://runs/nope")


@pytest.mark.slow
async def test_stdio_client_trains_gets_progress_and_picture_and_a_cancel_stops_the_cpu_work(cfg, tmp_path):
    import sys

    import psutil
    from mcp.client.stdio import StdioServerParameters

    script = (
        "import sys; from pathlib import Path; from mcp_server.server import build_server; "
        "from tools.config import LabConfig; "
        "build_server(LabConfig.create(Path(sys.argv[1])), ('mcp_server.tool_toy_mlp',)).run('stdio')"
    )
    params = StdioServerParameters(command=sys.executable, args=["-c", script, str(cfg.output_dir)])
    progress = []

    async def on_progress(done, total, message):
        progress.append(message)

    async with Client(params, mode="legacy") as c:
        server = next(p for p in psutil.Process().children(recursive=True) if script in " ".join(p.cmdline()))
        res = await c.call_tool("train_toy_mlp", SMALL, progress_callback=on_progress)
        assert not res.is_error and progress and [b.type for b in res.content][-1] == "image"
        with anyio.move_on_after(1.5):
            await c.call_tool(
                "train_toy_mlp", {**SMALL, "epochs": 1500, "n_samples": 2000, "hidden_layers": [32, 32]}
            )
        await anyio.sleep(1.0)  # cancellation must land within this second
        before = sum(server.cpu_times()[:2])
        await anyio.sleep(1.0)
        busy = sum(server.cpu_times()[:2]) - before
        assert busy < 0.2, f"the server still used {busy:.2f} s of CPU in the second after the cancel"
        res = await c.call_tool("train_toy_mlp", SMALL)
        assert not res.is_error
