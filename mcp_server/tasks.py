"""The MCP tasks extension (`io.modelcontextprotocol/tasks`, 2026-07-28) on the same job runner.

A client that declares the extension on its request gets, when a long tool outlives `wait_s`, a `CreateTaskResult`
(`resultType: "task"`, the job id as `taskId`) instead of this server's job handle; it then polls `tasks/get` and
may send `tasks/cancel`. Everything else (waiting, progress while the call waits, persistence, owners) is the job
runner's. Clients that do not declare it, and every legacy-era connection (whose result types cannot carry
`"task"`), get the `wait_s` + `job_status` path, which works everywhere.

Built on the SDK's extension framework (`mcp.server.extension.Extension`): `methods()` serves `tasks/get`,
`tasks/cancel` and `tasks/update`; `intercept_tool_call` turns a job handle into a task. Not offered: task status
notifications (`notifications/tasks` after `subscriptions/listen`: the SDK 2.3 has no hook for an extension to
join a subscription stream) and `input_required` (no tool of this server asks for input mid-run).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from typing import Any

from mcp.server.extension import Extension, MethodBinding
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult
from mcp_types import INVALID_PARAMS, RequestParams
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import ConfigDict, Field

from mcp_server import jobs
from tools.common import InvalidArgument
from tools.jobs import Job, JobRunner, JobStatus

EXTENSION_ID = "io.modelcontextprotocol/tasks"
POLL_INTERVAL_MS = 1000


class TaskIdParams(RequestParams):
    model_config = ConfigDict(populate_by_name=True, extra="allow")
    task_id: str = Field(alias="taskId")


_TASK_STATUS: dict[JobStatus, str] = {
    "queued": "working",
    "running": "working",
    "completed": "completed",
    "failed": "completed",  # a tool's own error is a completed call with isError (the spec's rule)
    "cancelled": "cancelled",
    "interrupted": "failed",  # the server stopped: a protocol-level failure (-32603)
}


def client_declares_tasks(ctx: Any) -> bool:
    """Whether this request's client declared the tasks extension (modern era only: legacy wires cannot carry it)."""
    if getattr(ctx, "protocol_version", None) not in MODERN_PROTOCOL_VERSIONS:
        return False
    caps = getattr(getattr(ctx, "session", None), "client_capabilities", None)
    extensions = getattr(caps, "extensions", None) or {}
    return EXTENSION_ID in extensions


def _headers(ctx: Any) -> Mapping[str, str] | None:
    return getattr(getattr(ctx, "request", None), "headers", None)


def stored_call_result(job: Job, runner: JobRunner) -> dict[str, Any]:
    """The CallToolResult (wire form) the tool call would have returned, rebuilt from the job's stored result."""
    rec = job.snapshot()
    if rec.status != "completed":
        text = rec.error or f"{rec.tool} {rec.status}"
        return CallToolResult(content=[{"type": "text", "text": text}], is_error=True).model_dump(  # type: ignore[list-item]
            by_alias=True, mode="json", exclude_none=True
        )
    stored = runner.result(job)
    if stored is None:
        return {"content": [{"type": "text", "text": "the result was pruned"}], "isError": True}
    content: list[dict[str, Any]] = []
    if stored.summary:
        content.append({"type": "text", "text": stored.summary})
    content.append(
        {"type": "text", "text": json.dumps(stored.data, ensure_ascii=False, separators=(",", ":"))}
    )
    for img in stored.images:
        content.append(
            {"type": "image", "data": base64.b64encode(img.png).decode("ascii"), "mimeType": img.mime_type}
        )
    return {"content": content, "structuredContent": stored.data, "isError": False}


def task_of(job: Job, runner: JobRunner, *, detailed: bool) -> dict[str, Any]:
    rec = job.snapshot()
    status = _TASK_STATUS[rec.status]
    last = rec.finished_at or rec.started_at or rec.created_at
    task: dict[str, Any] = {
        "taskId": rec.job_id,
        "status": status,
        "statusMessage": rec.error if rec.error else jobs.headline(jobs.view(rec)),
        "createdAt": jobs._iso(rec.created_at),
        "lastUpdatedAt": jobs._iso(last),
        "ttlMs": None,  # kept until pruned by the history caps (count and disk), not by age
        "pollIntervalMs": POLL_INTERVAL_MS,
    }
    if detailed and status == "completed":
        task["result"] = stored_call_result(job, runner)
    if detailed and status == "failed":
        task["error"] = {"code": -32603, "message": rec.error or "interrupted"}
    return task


class JobTasks(Extension):
    """Long tools as MCP tasks, on the server's job runner."""

    identifier = EXTENSION_ID

    def __init__(self, runner: Callable[[], JobRunner], long_tools: Callable[[], set[str]]):
        self._runner = runner
        self._long_tools = long_tools

    def methods(self) -> list[MethodBinding]:
        return [
            MethodBinding("tasks/get", TaskIdParams, self._get),
            MethodBinding("tasks/cancel", TaskIdParams, self._cancel),
            MethodBinding("tasks/update", TaskIdParams, self._update),
        ]

    def _job(self, ctx: Any, params: TaskIdParams) -> Job:
        if not client_declares_tasks(ctx):
            raise MCPError(
                code=-32021,
                message="Missing required client capability",
                data={"requiredCapabilities": {"extensions": {EXTENSION_ID: {}}}},
            )
        try:
            return self._runner().get(params.task_id, jobs.owner_of_headers(_headers(ctx)))
        except InvalidArgument as exc:
            raise MCPError(code=INVALID_PARAMS, message=f"Failed to retrieve task: {exc}") from None

    async def _get(self, ctx: Any, params: TaskIdParams) -> dict[str, Any]:
        return {"resultType": "complete", **task_of(self._job(ctx, params), self._runner(), detailed=True)}

    async def _cancel(self, ctx: Any, params: TaskIdParams) -> dict[str, Any]:
        import anyio.to_thread

        job = self._job(ctx, params)
        await anyio.to_thread.run_sync(self._runner().cancel, job)
        return {"resultType": "complete"}

    async def _update(self, ctx: Any, params: TaskIdParams) -> dict[str, Any]:
        self._job(
            ctx, params
        )  # no tool here asks for input: nothing is outstanding, so responses are ignored
        return {"resultType": "complete"}

    async def intercept_tool_call(self, params: Any, ctx: Any, call_next: Any) -> Any:
        result = await call_next(ctx)
        if params.name not in self._long_tools() or not client_declares_tasks(ctx):
            return result
        # The handler's CallToolResult (the SDK's internal class, not mcp.types'), or its wire dict.
        data = (
            result.get("structuredContent")
            if isinstance(result, dict)
            else getattr(result, "structured_content", None)
        )
        if (
            not isinstance(data, dict)
            or "job_id" not in data
            or data.get("status") not in ("queued", "running")
        ):
            return result  # finished within wait_s: the normal result
        job = self._runner().get(data["job_id"], jobs.owner_of_headers(_headers(ctx)))
        return {"resultType": "task", **task_of(job, self._runner(), detailed=False)}
