"""finetune_gpt and compare_gpt_stages through a real MCP client (in memory, both protocol eras): schema,
progress, picture, an error naming the argument, the chain sft -> grpo -> comparison, and the resources."""

from __future__ import annotations

import json

import jsonschema
import pytest
from mcp import Client

from mcp_server.server import build_server
from tools.config import JobSettings, LabConfig

# These tests read the tool's own result: on a busy machine a call can outlast the default wait_s and return a
# job handle instead (that path is tested in test_jobs_server.py and by the job test below).
LONG_WAIT = JobSettings(default_wait_s=600, max_wait_s=600)


@pytest.fixture
def cfg(tmp_path):
    return LabConfig.create(tmp_path / "out", jobs=LONG_WAIT)


@pytest.fixture(params=["legacy", "default"])
def mode(request):
    return {"mode": "legacy"} if request.param == "legacy" else {}


def _client(cfg, mode):
    return Client(build_server(cfg, ("mcp_server.tool_align",)), **mode)


async def test_chain_of_stages_through_the_client(cfg, mode):
    progress = []

    async def on_progress(done, total, message):
        progress.append((done, total, message))

    async with _client(cfg, mode) as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
        assert set(tools) == {"finetune_gpt", "compare_gpt_stages"}
        assert all(p.get("description") for p in tools["finetune_gpt"].input_schema["properties"].values())
        sft = await c.call_tool("finetune_gpt", {"method": "sft", "steps": 4, "n_eval": 10},
                                progress_callback=on_progress)  # fmt: skip
        assert not sft.is_error, sft.content
        jsonschema.validate(sft.structured_content, tools["finetune_gpt"].output_schema)
        run_id = sft.structured_content["run_id"]
        grpo = await c.call_tool("finetune_gpt", {"method": "grpo", "base_run": run_id, "steps": 1, "n_eval": 10,
                                                  "batch_size": 2, "group_size": 2})  # fmt: skip
        assert not grpo.is_error, grpo.content
        assert grpo.structured_content["history"][0]["kl"] is not None
        cmp = await c.call_tool(
            "compare_gpt_stages", {"runs": [grpo.structured_content["run_id"]], "n_eval": 10}
        )
        assert not cmp.is_error, cmp.content
        jsonschema.validate(cmp.structured_content, tools["compare_gpt_stages"].output_schema)
        assert [s["method"] for s in cmp.structured_content["stages"]] == ["base", "sft", "grpo"]
        assert [b.type for b in cmp.content].count("image") == 1
        listing = json.loads((await c.read_resource("mllab://gpt-stages")).contents[0].text)
        assert {s["run_id"] for s in listing} == {run_id, grpo.structured_content["run_id"]}
        one = json.loads((await c.read_resource(f"mllab://gpt-stages/{run_id}")).contents[0].text)
        assert one["result"]["method"] == "sft"
    assert progress and any("sft step" in (m or "") for _, _, m in progress)


async def test_errors_name_the_argument(cfg, mode):
    async with _client(cfg, mode) as c:
        res = await c.call_tool("finetune_gpt", {"method": "grpo", "group_size": 1})
        assert res.is_error and "group_size" in res.content[0].text and "advantage" in res.content[0].text
        res = await c.call_tool(
            "finetune_gpt", {"method": "grpo", "rewards": [{"kind": "contains", "word": "Zebra"}]}
        )
        assert res.is_error and "rewards[0].word" in res.content[0].text


async def test_finetune_gpt_runs_as_a_job_and_job_status_delivers_the_stage(cfg):
    async with Client(build_server(cfg), mode="legacy") as c:
        first = await c.call_tool("finetune_gpt", {"method": "sft", "steps": 4, "n_eval": 10, "wait_s": 0})
        assert not first.is_error, first.content
        handle = first.structured_content
        assert handle["job_id"].startswith("job-") and "job_status" in handle["next_step"]
        for _ in range(60):
            res = await c.call_tool("job_status", {"job_id": handle["job_id"], "wait_s": 5})
            assert not res.is_error, res.content
            if res.structured_content["status"] not in ("queued", "running"):
                break
        view = res.structured_content
        assert view["status"] == "completed", view
        result = view["result"]
        assert result["method"] == "sft" and result["run_id"]
        listing = json.loads((await c.read_resource("mllab://gpt-stages")).contents[0].text)
        assert [s["run_id"] for s in listing] == [result["run_id"]]
