"""MCP tools job_status, cancel_job and list_jobs, and the mllab://jobs resources (see mcp_server/jobs.py)."""

# No `from __future__ import annotations`: the SDK reads these signatures, whose bounds come from `cfg`.

from typing import Annotated, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import Field

from mcp_server import jobs
from mcp_server.adapter import McpReporter
from tools.common import InvalidArgument
from tools.config import LabConfig

JOB_ID = Annotated[
    str, Field(max_length=64, description="The job's id, from the long tool's answer or list_jobs.")
]


def register(mcp: MCPServer, cfg: LabConfig) -> None:
    read_only = ToolAnnotations(
        read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
    )
    wait_desc = f"Seconds to wait for the job to finish before answering (0 = answer at once; at most {cfg.jobs.max_wait_s:g})."

    @mcp.tool(
        name="job_status",
        title="Status or result of a job",
        description="Where a job (a long tool call that outlived its wait) stands: waits up to wait_s for it to "
        "finish, reporting its progress, then returns its status, progress and partial result, or, once completed, "
        "the tool's full result with its picture.",
        annotations=read_only,
        structured_output=True,
    )
    def job_status(
        job_id: JOB_ID,
        ctx: Context,
        wait_s: Annotated[
            float, Field(ge=0, le=cfg.jobs.max_wait_s, description=wait_desc)
        ] = cfg.jobs.default_wait_s,
    ) -> Annotated[CallToolResult, jobs.JobView]:
        try:
            return jobs.job_status(mcp, cfg, ctx, job_id, wait_s, McpReporter(ctx, 0.2))
        except InvalidArgument as exc:
            raise ToolError(str(exc)) from None

    @mcp.tool(
        name="cancel_job",
        title="Cancel a job",
        description="Stop a job: a queued one at once, a running one within a second (its partial result is kept).",
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
        ),
        structured_output=True,
    )
    def cancel_job(job_id: JOB_ID, ctx: Context) -> Annotated[CallToolResult, jobs.JobView]:
        try:
            return jobs.cancel_job(mcp, cfg, ctx, job_id)
        except InvalidArgument as exc:
            raise ToolError(str(exc)) from None

    @mcp.tool(
        name="list_jobs",
        title="List your jobs",
        description="Your jobs, newest first, with status and progress; filter by status or tool.",
        annotations=read_only,
        structured_output=True,
    )
    def list_jobs(
        ctx: Context,
        status: Annotated[
            Literal["queued", "running", "completed", "failed", "cancelled", "interrupted"] | None,
            Field(description="Only jobs with this status."),
        ] = None,
        tool: Annotated[str | None, Field(max_length=100, description="Only jobs of this tool.")] = None,
    ) -> jobs.JobList:
        try:
            return jobs.list_jobs(mcp, cfg, ctx, status, tool)
        except InvalidArgument as exc:
            raise ToolError(str(exc)) from None

    jobs.register_job_resources(mcp, cfg)
