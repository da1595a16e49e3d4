"""MCP tools job_status, cancel_job and list_jobs, and the mllab://jobs resources (see mcp_server/jobs.py)."""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

from mcp_server import jobs
from mcp_server.adapter import READ_ONLY, register_tool
from tools.config import LabConfig


def register(mcp: MCPServer, cfg: LabConfig) -> None:
    run = jobs.job_tools(mcp)
    register_tool(
        mcp,
        cfg,
        name="job_status",
        title="Status or result of a job",
        description="Where a job (a long tool call that outlived its wait_s) stands: waits up to wait_s for it to "
        "finish, reporting its progress, then returns its status, progress and partial result, or, once "
        "completed, the tool's full result (under `result`) with its picture.",
        input_model=jobs.JobStatusInput,
        result_model=jobs.JobView,
        run=run["job_status"],
        annotations=READ_ONLY,
        progress_interval_s=0.2,
    )
    tool = mcp._tool_manager.get_tool("job_status")  # the bound is the server's setting, not the model's
    assert tool is not None
    tool.parameters["properties"]["wait_s"].update(
        maximum=cfg.jobs.max_wait_s, default=cfg.jobs.default_wait_s
    )
    register_tool(
        mcp,
        cfg,
        name="cancel_job",
        title="Cancel a job",
        description="Stop a job: a queued one at once, a running one within a second (its partial result is "
        "kept). A finished job is left as it is.",
        input_model=jobs.CancelJobInput,
        result_model=jobs.JobView,
        run=run["cancel_job"],
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
        ),
    )
    register_tool(
        mcp,
        cfg,
        name="list_jobs",
        title="List your jobs",
        description="Your jobs (long tool calls), newest first, with status and progress; filter by status or tool.",
        input_model=jobs.ListJobsInput,
        result_model=jobs.JobList,
        run=run["list_jobs"],
        annotations=READ_ONLY,
    )
    jobs.register_job_resources(mcp, cfg)
