"""The MCP tasks extension on the job runner, through a real client that declares it (SDK ClientExtension with a
ResultClaim for resultType "task"): a long call becomes a task, tasks/get polls it to the tool's own result,
tasks/cancel stops one; clients without the extension (or on the legacy handshake) get the job handle."""

from __future__ import annotations

import time
from typing import Any, Literal

import anyio
import pytest
from mcp import Client
from mcp.client.extension import ClaimContext, ClientExtension, ResultClaim
from mcp.types import CallToolResult
from mcp_types import GetTaskRequest, GetTaskRequestParams, Request, RequestParams, Result
from pydantic import ConfigDict

from mcp_server.server import build_server
from mcp_server.tasks import EXTENSION_ID
from tools.config import LabConfig

LONG = {
    "dataset": "spiral",
    "epochs": 50_000,
    "n_samples": 1000,
    "hidden_layers": [16, 16],
    "time_budget_s": 6,
}
SMALL = {"dataset": "circle", "hidden_layers": [8], "epochs": 30, "n_samples": 200}


class CreateTaskResult(Result):
    model_config = ConfigDict(extra="allow")
    result_type: Literal["task"] = "task"
    task_id: str
    status: str


class TaskState(Result):
    model_config = ConfigDict(extra="allow")
    task_id: str
    status: str
    status_message: str | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


class CancelParams(RequestParams):
    task_id: str


class CancelTask(Request[CancelParams, Literal["tasks/cancel"]]):
    method: Literal["tasks/cancel"] = "tasks/cancel"
    params: CancelParams


class Tasks(ClientExtension):
    """A minimal tasks client: polls tasks/get until the task is terminal, records what it saw."""

    identifier = EXTENSION_ID

    def __init__(self, cancel_after_s: float | None = None):
        self.created: list[CreateTaskResult] = []
        self.polls: list[TaskState] = []
        self.cancel_after_s = cancel_after_s

    def claims(self):
        return [ResultClaim(result_type="task", model=CreateTaskResult, resolve=self.resolve)]

    async def resolve(self, created: CreateTaskResult, ctx: ClaimContext) -> CallToolResult:
        self.created.append(created)
        t0 = time.monotonic()
        while True:
            state = await ctx.session.send_request(
                GetTaskRequest(params=GetTaskRequestParams(task_id=created.task_id)), TaskState
            )
            self.polls.append(state)
            if state.status == "completed":
                return CallToolResult.model_validate(state.result)
            if state.status in ("cancelled", "failed"):
                return CallToolResult(content=[{"type": "text", "text": state.status}], is_error=True)  # type: ignore[list-item]
            if self.cancel_after_s is not None and time.monotonic() - t0 > self.cancel_after_s:
                await ctx.session.send_request(
                    CancelTask(params=CancelParams(task_id=created.task_id)), Result
                )
                self.cancel_after_s = None
            await anyio.sleep(0.3)


@pytest.fixture
def cfg(tmp_path):
    return LabConfig.create(tmp_path / "out")


async def test_a_long_call_becomes_a_task_and_tasks_get_returns_the_tools_own_result(cfg):
    tasks = Tasks()
    async with Client(build_server(cfg), extensions=[tasks]) as c:
        assert EXTENSION_ID in (c.server_capabilities.extensions or {})
        res = await c.call_tool("train_toy_mlp", {**LONG, "wait_s": 1})
    assert len(tasks.created) == 1 and tasks.created[0].status == "working"
    assert tasks.created[0].task_id.startswith("job-")
    assert any(p.status == "working" for p in tasks.polls) and tasks.polls[-1].status == "completed"
    assert not res.is_error
    data = res.structured_content
    assert "job_id" not in data and data["runs"][0]["stop_reason"] == "time_budget"  # the tool's own result
    assert [b.type for b in res.content][-1] == "image"


async def test_short_calls_stay_one_round_trip_and_clients_without_tasks_get_the_job_handle(cfg):
    tasks = Tasks()
    async with Client(build_server(cfg), extensions=[tasks]) as c:
        res = await c.call_tool("train_toy_mlp", SMALL)
        assert not res.is_error and "run_id" in res.structured_content and not tasks.created
    for mode in ({}, {"mode": "legacy"}):
        async with Client(build_server(cfg), **mode) as c:
            res = await c.call_tool("train_toy_mlp", {**LONG, "wait_s": 0})
            assert res.structured_content["status"] in ("queued", "running"), mode
            await c.call_tool("cancel_job", {"job_id": res.structured_content["job_id"]})


async def test_tasks_cancel_stops_the_job(cfg):
    tasks = Tasks(cancel_after_s=0.5)
    async with Client(build_server(cfg), extensions=[tasks]) as c:
        res = await c.call_tool("train_toy_mlp", {**LONG, "time_budget_s": 60, "wait_s": 0})
        jobs = (await c.call_tool("list_jobs", {})).structured_content["jobs"]
    assert res.is_error and tasks.polls[-1].status == "cancelled"
    assert jobs[0]["status"] == "cancelled"


async def test_tasks_get_of_an_unknown_task_is_invalid_params(cfg):
    async with Client(build_server(cfg), extensions=[Tasks()]) as c:
        with pytest.raises(Exception, match="Failed to retrieve task"):
            await c.session.send_request(
                GetTaskRequest(params=GetTaskRequestParams(task_id="job-" + "q" * 22)), TaskState
            )
