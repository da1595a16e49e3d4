"""Jobs over MCP: long tools that return a job when they outlive `wait_s`, and the tools to follow one up.

A long tool (registered with `long_running=True`) runs as a job on the server's `JobRunner`. The call waits up to
`wait_s` seconds (default 40: under the ~60 s at which common clients cut a call), forwarding the job's progress as
MCP progress notifications. Done in time: the normal result, exactly as a direct call gives it. Not done: a job
handle (id, status, progress, partial result) and the next step in words. `job_status` waits again and returns
the final result with its pictures; `cancel_job` stops one; `list_jobs` and `mllab://jobs` list them.

Over HTTP with bearer tokens, a job belongs to the token that started it: another token's calls see "no such
job", exactly as for an id that never existed. On stdio (one client) every job is the one client's.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal, Union

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel, Field, RootModel

from tools.common import Cancelled, InvalidArgument, Reporter, ToolInput, ToolOutput
from tools.config import LabConfig
from tools.jobs import JOB_STATUSES, Job, JobRecord, JobRunner, JobStatus, Progress, make_runner

WAIT_POLL_S = 0.25  # a waiting call checks for the client's cancel at least this often


_RUNNER_LOCK = threading.Lock()


def runner_of(mcp: MCPServer, cfg: LabConfig) -> JobRunner:
    """The server's job runner (one per server), created on first use under `<output>/jobs` (the CLI creates it
    at start-up for Ray, so that a cluster that cannot run stops the server before it serves).

    Created under a lock: two first calls at once (two clients of a fresh HTTP server) would otherwise make two
    runners, and the second one's start-up, which clears the temporary files a kill leaves behind, deleted the
    first one's record while it was being written (FileNotFoundError), and that job was then lost to job_status.
    """
    runner = getattr(mcp, "_ml_lab_jobs", None)
    if runner is not None:
        return runner
    with _RUNNER_LOCK:
        runner = getattr(mcp, "_ml_lab_jobs", None)
        if runner is None:
            runner = make_runner(cfg.output_dir / "jobs", cfg.jobs)
            mcp._ml_lab_jobs = runner  # type: ignore[attr-defined]
    return runner


def owner_of(ctx: Context | None) -> str:
    """Who a call speaks for: the digest of its HTTP bearer token, or 'local' (stdio, or HTTP without a token)."""
    try:
        headers = ctx.headers if ctx is not None else None
    except (AttributeError, LookupError, ValueError):
        headers = None
    return owner_of_headers(headers)


def owner_of_headers(headers: Mapping[str, str] | None) -> str:
    headers = headers or {}
    auth = headers.get("authorization") or headers.get("Authorization") or ""
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return "local"
    return "token-" + hashlib.sha256(token.strip().encode("utf-8")).hexdigest()[:24]


def long_tools_of(mcp: MCPServer) -> set[str]:
    """Names of the tools registered with long_running=True on this server."""
    names = getattr(mcp, "_ml_lab_long_tools", None)
    if names is None:
        names = set()
        mcp._ml_lab_long_tools = names  # type: ignore[attr-defined]
    return names


# ---- what the client sees


class JobView(BaseModel):
    """A job as a client sees it: where it stands, and its result when it has one."""

    job_id: str = Field(description="The job's id: pass it to job_status or cancel_job.")
    tool: str = Field(description="The tool this job runs.")
    status: JobStatus = Field(
        description="queued (waits for a free slot), running, completed, failed, cancelled, or interrupted "
        "(the server stopped while it ran; its last partial result is kept)."
    )
    progress: Progress = Field(description="The tool's latest progress report.")
    partial: dict[str, Any] | None = Field(
        None,
        description="The tool's latest partial result (e.g. the loss curve so far), while it has no final one.",
    )
    result: dict[str, Any] | None = Field(
        None, description="The final result (status completed), as the tool returns it."
    )
    error: str | None = Field(None, description="Why it failed, was cancelled or interrupted.")
    arguments: dict[str, Any] = Field(description="The arguments the job was started with.")
    created_at: str = Field(description="When the job was started (UTC, ISO 8601).")
    elapsed_s: float = Field(description="Seconds from start to finish, or until now if it still runs.")
    next_step: str = Field(description="What to do next, in words.")


class JobList(BaseModel):
    jobs: list[JobView] = Field(
        description="This client's jobs, newest first (without partial or final results)."
    )


def _iso(t: float | None) -> str:
    return dt.datetime.fromtimestamp(t or 0, dt.UTC).isoformat(timespec="seconds")


def view(
    rec: JobRecord, result: dict[str, Any] | None = None, *, brief: bool = False, wait_s: float = 40
) -> JobView:
    end = rec.finished_at or time.time()
    if rec.status in ("queued", "running"):
        step = f'call job_status with job_id="{rec.job_id}", wait_s={wait_s:g} to wait for the result'
        step += " (or cancel_job to stop it)"
    elif rec.status == "completed":
        step = (
            "done: the result is in `result`"
            if result is not None
            else f'call job_status with job_id="{rec.job_id}"'
        )
    else:
        step = f"run {rec.tool} again to redo it"
    return JobView(
        job_id=rec.job_id,
        tool=rec.tool,
        status=rec.status,
        progress=rec.progress,
        partial=None if brief or rec.status == "completed" else rec.partial,
        result=None if brief else result,
        error=rec.error,
        arguments=rec.arguments,
        created_at=_iso(rec.created_at),
        elapsed_s=round(end - (rec.started_at or rec.created_at), 2),
        next_step=step,
    )


def _progress_text(p: Progress) -> str:
    if p.total:
        text = f"{p.done:g}/{p.total:g}"
    elif p.done:
        text = f"{p.done:g}"
    else:
        return "no progress yet"
    return f"{text}: {p.message}" if p.message else text


def headline(v: JobView) -> str:
    """One line on where the job stands, with the next step while it runs."""
    head = f"Job {v.job_id} ({v.tool}): {v.status}"
    if v.status in ("queued", "running"):
        head += f" after {v.elapsed_s:g} s ({_progress_text(v.progress)}). Next: {v.next_step}."
    elif v.error:
        head += f": {v.error}"
    return head


def handle_result(v: JobView) -> CallToolResult:
    """A long tool's answer when its work outlived wait_s: the headline and the job handle."""
    data = v.model_dump(mode="json")
    content = [
        TextContent(type="text", text=headline(v)),
        TextContent(type="text", text=json.dumps(data, ensure_ascii=False, separators=(",", ":"))),
    ]
    return CallToolResult(content=content, structured_content=data)


def result_or_job_model(result_model: type[BaseModel]) -> type[BaseModel]:
    """What a long tool's structured result is validated against: its normal result, or a job handle."""

    class ResultOrJob(RootModel[Union[result_model, JobView]]):  # type: ignore[valid-type]  # noqa: UP007
        pass

    ResultOrJob.__name__ = f"{result_model.__name__}OrJob"
    return ResultOrJob


def result_or_job_schema(result_model: type[BaseModel]) -> dict[str, Any]:
    """The outputSchema a long tool publishes: the result's properties and the job handle's, side by side.

    One object schema with every property at the top (clients read `properties`), and `anyOf` two `required`
    lists: a structured result is either the tool's normal result or a job handle, never half of each.
    """
    result, job = result_model.model_json_schema(), JobView.model_json_schema()
    clash = (set(result["properties"]) & set(job["properties"])) | (
        set(result.get("$defs", {})) & set(job.get("$defs", {}))
    )
    if clash:
        raise TypeError(f"{result_model.__name__} shares names with the job handle: {sorted(clash)}")
    return {
        "type": "object",
        "title": f"{result_model.__name__} or a job handle",
        "description": "The tool's result; or, when the work outlived wait_s, a job handle (job_id, status, "
        "progress, partial) to follow up with job_status.",
        "properties": {**result["properties"], **job["properties"]},
        "anyOf": [{"required": result.get("required", [])}, {"required": job.get("required", [])}],
        "$defs": {**result.get("$defs", {}), **job.get("$defs", {})},
    }


# ---- waiting


def check_wait_s(value: Any, cfg: LabConfig, argument: str = "wait_s") -> float:
    top = cfg.jobs.max_wait_s
    if isinstance(value, bool) or not isinstance(value, int | float) or not (0 <= value <= top):
        raise InvalidArgument(
            argument, value, f"must be a number of seconds from 0 (return at once) to {top:g}"
        )
    return float(value)


def wait_s_schema(cfg: LabConfig) -> dict[str, Any]:
    return {
        "type": "number",
        "minimum": 0,
        "maximum": cfg.jobs.max_wait_s,
        "default": cfg.jobs.default_wait_s,
        "description": f"Seconds this call may wait for the work (0 = return a job at once; at most "
        f"{cfg.jobs.max_wait_s:g}). Work that takes longer goes on as a job: the call returns its job_id, progress "
        "and partial result, and job_status returns the result.",
    }


def wait_for(job: Job, wait_s: float, reporter: Reporter) -> bool:
    """Wait up to `wait_s` for `job` to finish, passing its progress to `reporter` (whose cancel ends the wait).

    Every new progress report of the tool is forwarded (the latest one when several came between two wake-ups),
    the last one too when the job finishes right after it.
    """
    deadline = time.monotonic() + wait_s
    seen, sent = -1, Progress()
    while True:
        finished = job.finished  # read before the progress, so the last report is never skipped
        version = job.version
        if version != seen:
            seen = version
            p = job.record.progress
            if p != sent and (p.total is not None or p.done or p.message):
                sent = p
                reporter.progress(p.done, p.total, p.message)  # also a cancellation check
        if finished:
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        reporter.check_cancelled()
        job.wait_change(seen, min(left, WAIT_POLL_S))


def run_long(
    mcp: MCPServer,
    cfg: LabConfig,
    name: str,
    args: BaseModel,
    run: Callable[[Any, LabConfig, Any], ToolOutput],
    ctx: Context | None,
    reporter: Reporter,
    wait_s: float,
    to_call_result: Callable[[ToolOutput], CallToolResult],
    heavy: bool = True,
) -> CallToolResult:
    """Run a long tool as a job; its normal result if it finishes within `wait_s`, else a job handle."""
    runner = runner_of(mcp, cfg)
    arguments = args.model_dump(mode="json", exclude_unset=True)
    job = runner.submit(name, arguments, lambda rep: run(args, cfg, rep), owner=owner_of(ctx), heavy=heavy)
    try:
        finished = wait_for(job, wait_s, reporter)
    except Cancelled:  # the client cancelled this call: the work it started stops too
        runner.cancel(job)
        raise ToolError(f"{name} was cancelled") from None
    if not finished:
        return handle_result(view(job.snapshot(), wait_s=cfg.jobs.default_wait_s))
    rec = job.snapshot()
    if (
        rec.status == "completed" and job.output is not None
    ):  # in memory for the newest few (tools/jobs/runner.py)
        return to_call_result(job.output)
    stored = runner.result(job) if rec.status == "completed" else None
    if stored is not None:  # it ran elsewhere (a Ray task) or is no longer held in memory: read back
        return to_call_result(ToolOutput(StoredResult(stored.data), stored.images, summary=stored.summary))
    if rec.status == "cancelled":
        raise ToolError(f"{name} was cancelled")
    raise ToolError(rec.error or f"{name} failed")


class StoredResult(RootModel[dict[str, Any]]):
    """A tool's result as stored (its JSON), standing in for the result model it was dumped from."""


# ---- the job tools and resources


class JobStatusInput(ToolInput):
    job_id: str = Field(max_length=64, description="The job's id, from the long tool's answer or list_jobs.")
    wait_s: float = Field(
        40.0,
        ge=0,
        le=3600,
        allow_inf_nan=False,
        description="Seconds to wait for the job to finish before answering (0 = answer at once; at most the "
        "server's max_wait_s, 55 by default).",
    )


class CancelJobInput(ToolInput):
    job_id: str = Field(max_length=64, description="The job's id.")


class ListJobsInput(ToolInput):
    status: Literal["queued", "running", "completed", "failed", "cancelled", "interrupted"] | None = Field(
        None, description="Only jobs with this status."
    )
    tool: str | None = Field(None, max_length=100, description="Only jobs of this tool.")


def _caller(reporter: Reporter) -> str:
    """The owner of a job-tool call: the adapter's reporter carries the MCP request context."""
    return owner_of(getattr(reporter, "ctx", None))


def job_tools(mcp: MCPServer) -> dict[str, Callable[[Any, LabConfig, Reporter], ToolOutput]]:
    """The `run` functions of job_status, cancel_job and list_jobs (registered by mcp_server/tool_jobs.py)."""

    def job_status(args: JobStatusInput, cfg: LabConfig, reporter: Reporter) -> ToolOutput:
        runner = runner_of(mcp, cfg)
        given = "wait_s" in args.model_fields_set
        wait_s = check_wait_s(args.wait_s if given else cfg.jobs.default_wait_s, cfg)
        job = runner.get(args.job_id, _caller(reporter))
        wait_for(job, wait_s, reporter)  # a cancel of this call ends the wait, never the job
        rec = job.snapshot()
        stored = runner.result(job) if rec.status == "completed" else None
        v = view(rec, stored.data if stored else None, wait_s=cfg.jobs.default_wait_s)
        summary = headline(v) + (f"\n{stored.summary}" if stored and stored.summary else "")
        return ToolOutput(v, list(stored.images) if stored else [], summary=summary)

    def cancel_job(args: CancelJobInput, cfg: LabConfig, reporter: Reporter) -> ToolOutput:
        runner = runner_of(mcp, cfg)
        rec = runner.cancel(runner.get(args.job_id, _caller(reporter)))
        v = view(rec, wait_s=cfg.jobs.default_wait_s)
        return ToolOutput(v, summary=headline(v))

    def list_jobs_run(args: ListJobsInput, cfg: LabConfig, reporter: Reporter) -> ToolOutput:
        result = list_jobs(mcp, cfg, _caller(reporter), args.status, args.tool)
        return ToolOutput(result, summary=f"{len(result.jobs)} job(s)")

    return {"job_status": job_status, "cancel_job": cancel_job, "list_jobs": list_jobs_run}


def list_jobs(mcp: MCPServer, cfg: LabConfig, owner: str, status: str | None, tool: str | None) -> JobList:
    if status is not None and status not in JOB_STATUSES:
        raise InvalidArgument("status", status, "one of " + ", ".join(JOB_STATUSES))
    records = runner_of(mcp, cfg).list(owner, status, tool)  # type: ignore[arg-type]
    return JobList(jobs=[view(r, brief=True, wait_s=cfg.jobs.default_wait_s) for r in records])


def register_job_resources(mcp: MCPServer, cfg: LabConfig) -> None:
    # A template (optional query variables) rather than a static resource: only templates receive the Context,
    # and the list depends on who asks.
    @mcp.resource(
        "mllab://jobs{?status,tool}",
        name="jobs",
        title="Your jobs",
        description="This client's jobs (long tool calls), newest first: status and progress. "
        "Filter with ?status=running or ?tool=train_toy_mlp.",
        mime_type="application/json",
    )
    def read_jobs(ctx: Context, status: str | None = None, tool: str | None = None) -> str:
        try:
            return list_jobs(mcp, cfg, owner_of(ctx), status, tool).model_dump_json(indent=1)
        except InvalidArgument as exc:
            raise ResourceError(str(exc)) from None

    @mcp.resource(
        "mllab://jobs/{job_id}",
        name="job",
        title="One job",
        description="A job's status, progress, partial result and, once completed, its final result.",
        mime_type="application/json",
    )
    def read_job(job_id: str, ctx: Context) -> str:
        runner = runner_of(mcp, cfg)
        try:
            job = runner.get(job_id, owner_of(ctx))
        except InvalidArgument as exc:
            raise ResourceError(str(exc)) from None
        rec = job.snapshot()
        stored = runner.result(job) if rec.status == "completed" else None
        return view(rec, stored.data if stored else None, wait_s=cfg.jobs.default_wait_s).model_dump_json(
            indent=1
        )
