"""train_tiny_gpt and sample_text through a real MCP client: the user's own text file, progress with samples,
a head's attention, sampling at temperature 0.2 and 1.5, and the run listed as a resource."""

from __future__ import annotations

import json

import jsonschema
from mcp import Client

from mcp_server.server import build_server
from tools.config import JobSettings, LabConfig
from tools.tiny_gpt.corpus import builtin_corpus

# These tests read the tool's own result: on a busy machine a call can outlast the default wait_s and return a
# job handle instead (that path is tested in test_jobs_server.py).
LONG_WAIT = JobSettings(default_wait_s=600, max_wait_s=600)

TOOLS = ("mcp_server.tool_tiny_gpt", "mcp_server.tool_sample_text")


async def test_train_on_a_file_then_sample_cold_and_hot_through_the_client(tmp_path):
    cfg = LabConfig.create(tmp_path / "out", [tmp_path], jobs=LONG_WAIT)
    (tmp_path / "my_text.txt").write_text(builtin_corpus("names")[:5000], encoding="utf-8")
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(done, total, message):
        progress.append((done, total, message))

    async with Client(build_server(cfg, TOOLS), mode="legacy") as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
        res = await c.call_tool(
            "train_tiny_gpt",
            {"corpus_path": str(tmp_path / "my_text.txt"), "n_layer": 1, "n_embd": 16, "n_head": 2, "block_size": 16,
             "batch_size": 4, "max_steps": 6, "eval_interval": 3, "eval_iters": 2, "sample_tokens": 8},
            progress_callback=on_progress,
        )  # fmt: skip
        assert not res.is_error, res.content
        run = res.structured_content
        jsonschema.validate(run, tools["train_tiny_gpt"].output_schema)
        cold = await c.call_tool("sample_text", {"run_id": run["run_id"], "prompt": "ma", "temperature": 0.2})
        hot = await c.call_tool("sample_text", {"run_id": run["run_id"], "prompt": "ma", "temperature": 1.5})
        listed = json.loads((await c.read_resource("mllab://gpt-runs")).contents[0].text)
        bad = await c.call_tool("train_tiny_gpt", {"n_head": 3, "n_embd": 64})
    assert [m for _, _, m in progress if m and m.startswith("step")][-1].startswith("step 6")
    assert [s["step"] for s in run["samples"]] == [0, 3, 6]
    assert len(run["attention"]["heads"]) == 2 and run["attention"]["heads"][0]["top"]
    assert [b.type for b in res.content].count("image") == 2
    for r in (cold, hot):
        assert not r.is_error, r.content
        jsonschema.validate(r.structured_content, tools["sample_text"].output_schema)
        assert len(r.structured_content["tokens"][0]["alternatives"]) == 5
    mean = [sum(t["probability"] for t in r.structured_content["tokens"]) for r in (cold, hot)]
    assert mean[0] > mean[1]
    assert listed[0]["run_id"] == run["run_id"]
    assert bad.is_error and "n_head" in bad.content[0].text
