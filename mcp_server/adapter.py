"""Turn a `tools` function (input model -> ToolOutput) into an MCP tool, with progress and cancellation.

This is the one boundary where any exception is caught: a tool's own errors (InvalidArgument,
ToolFailure) reach the model verbatim as ToolError; anything else is logged to stderr and reported
as an internal error, and the server keeps serving.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import anyio.from_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase
from mcp.types import CallToolResult, ImageContent, TextContent, ToolAnnotations
from pydantic import BaseModel, ConfigDict

from mcp_server import jobs
from mcp_server.memory import release_freed_memory
from tools.arguments import InvalidArguments, parse_arguments
from tools.common import Cancelled, InvalidArgument, ToolFailure, ToolOutput
from tools.config import LabConfig

log = logging.getLogger("ml_lab_mcp")

RunFn = Callable[[Any, LabConfig, Any], ToolOutput]


class McpReporter:
    """Reporter for a call running in an anyio worker thread: MCP progress + cancellation checks."""

    def __init__(self, ctx: Context | None, min_interval_s: float = 0.0):
        self._ctx = ctx
        self._min_interval = min_interval_s
        self._last = 0.0
        self._lock = threading.Lock()

    def progress(self, done: float, total: float | None = None, message: str | None = None) -> None:
        # Every progress report is also a cancellation point, so a loop that reports stops on a cancel.
        self.check_cancelled()
        if self._ctx is None:
            return
        now = time.monotonic()
        with self._lock:
            final = total is not None and done >= total
            if not final and now - self._last < self._min_interval:
                return
            self._last = now
        try:
            anyio.from_thread.run(self._ctx.report_progress, float(done), total, message)
        except RuntimeError:  # not in a worker thread (direct call): nothing to report to
            self._ctx = None
        except BaseException as exc:
            if _is_cancellation(exc):
                raise Cancelled() from None
            raise

    @property
    def ctx(self) -> Context | None:
        """The MCP request context (the job tools read who is calling from it)."""
        return self._ctx

    def partial(self, result: Any) -> None:
        return None  # a direct call has only its final result; a job keeps partial results (tools/jobs)

    def check_cancelled(self) -> None:
        try:
            anyio.from_thread.check_cancelled()
        except RuntimeError:  # not in a worker thread (direct call): never cancelled
            return
        except BaseException as exc:
            if _is_cancellation(exc):
                raise Cancelled() from None
            raise


def _is_cancellation(exc: BaseException) -> bool:
    """Whether `exc` is the event loop's cancellation, seen from a worker thread.

    `anyio.get_cancelled_exc_class()` cannot be used here: it asks the running event loop, and a worker
    thread has none (it raises NoEventLoopError, which turned every cancel into an "internal error").
    """
    if isinstance(exc, asyncio.CancelledError):
        return True
    trio = sys.modules.get("trio")
    return trio is not None and isinstance(exc, trio.Cancelled)


@contextmanager
def resource_errors() -> Iterator[None]:
    """The one mapping for resources, as `register_tool` is for tools: a caller's mistake or a readable
    failure becomes a ResourceError whose text reaches the client."""
    try:
        yield
    except (InvalidArgument, ToolFailure) as exc:
        raise ResourceError(str(exc)) from None


def to_call_result(output: ToolOutput) -> CallToolResult:
    data = output.result.model_dump(mode="json")
    content: list[Any] = []
    if output.summary:
        content.append(TextContent(type="text", text=output.summary))
    content.append(TextContent(type="text", text=json.dumps(data, ensure_ascii=False, separators=(",", ":"))))
    for img in output.images:
        if img.caption:
            content.append(TextContent(type="text", text=f"Picture: {img.caption}"))
        content.append(
            ImageContent(
                type="image", data=base64.b64encode(img.png).decode("ascii"), mime_type=img.mime_type
            )
        )
    return CallToolResult(content=content, structured_content=data)


# The hints every tool of this server shares (none of them reaches outside this machine).
READ_ONLY = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
# Writes new files under the output folder: generated names, nothing overwritten or deleted; the same
# arguments give the same numbers and picture, only another copy of the files.
WRITES_NEW_FILES = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)


class _RawArguments(ArgModelBase):
    """Hands the call's arguments to the tool through the SDK untouched, as one dict named `arguments`.

    MCP SDK 2.3 builds a tool's argument model only from a function signature (`func_metadata`: a
    `create_model` whose extra keys are dropped and whose errors are pydantic's own text); there is no way
    to register a tool from a pydantic model. So the SDK's pass validates nothing here, the tool's own
    input model (`extra="forbid"`) is the one validation pass, and the published inputSchema is that
    model's JSON schema.
    """

    model_config = ConfigDict(extra="allow")

    def model_dump_one_level(self) -> dict[str, Any]:
        return {"arguments": dict(self.model_extra or {})}


def register_tool(
    mcp: MCPServer,
    cfg: LabConfig,
    *,
    name: str,
    title: str,
    description: str,
    input_model: type[BaseModel],
    result_model: type[BaseModel],
    run: RunFn,
    annotations: ToolAnnotations,
    progress_interval_s: float = 0.0,
    long_running: bool = False,
) -> None:
    """Register `run(input_model(**args), cfg, reporter) -> ToolOutput` as the MCP tool `name`.

    The inputSchema is the input model's JSON schema (types, bounds, descriptions, no extra keys); the
    outputSchema is the result model. The input model validates the arguments once; `run` receives it with
    `model_fields_set` telling which arguments the caller gave.

    `long_running=True` runs the tool as a job (mcp_server/jobs.py): it gains a `wait_s` argument (how long the
    call may wait) and, when the work outlives it, returns a job handle instead of its result.
    """
    if input_model.model_config.get("extra") != "forbid":
        raise TypeError(
            f"{input_model.__name__} must refuse unknown arguments: subclass tools.common.ToolInput"
        )

    def call(arguments: dict[str, Any], ctx: Context) -> CallToolResult:
        try:
            if long_running:
                arguments = dict(arguments)
                wait_s = jobs.check_wait_s(arguments.pop("wait_s", cfg.jobs.default_wait_s), cfg)
            args = parse_arguments(input_model, arguments, name)
        except (InvalidArguments, InvalidArgument) as exc:
            raise ToolError(str(exc)) from None
        reporter = McpReporter(ctx, progress_interval_s)
        try:
            if long_running:
                return jobs.run_long(mcp, cfg, name, args, run, ctx, reporter, wait_s, to_call_result)
            return to_call_result(run(args, cfg, reporter))
        except (InvalidArgument, ToolFailure) as exc:
            raise ToolError(str(exc)) from None
        except Cancelled:
            raise ToolError(f"{name} was cancelled") from None
        except ToolError:
            raise
        except MemoryError:
            log.exception("tool %s ran out of memory", name)
            raise ToolError(f"{name} ran out of memory; try smaller inputs") from None
        except Exception as exc:  # the one boundary: the server must keep serving
            log.exception("tool %s failed", name)
            raise ToolError(f"Internal error in {name}: {type(exc).__name__}: {exc}") from None
        finally:
            release_freed_memory()  # the call's arrays are freed now; without this RSS grows call after call

    # Set as objects: the SDK evaluates string annotations in the module's globals, where result_model is not.
    call.__annotations__ = {
        "arguments": dict,
        "ctx": Context,
        "return": Annotated[
            CallToolResult, jobs.result_or_job_model(result_model) if long_running else result_model
        ],
    }
    mcp.add_tool(
        call, name=name, title=title, description=description, annotations=annotations, structured_output=True
    )
    tool = mcp._tool_manager.get_tool(name)  # no public accessor; see _RawArguments for why
    assert tool is not None
    tool.parameters = input_model.model_json_schema()
    tool.fn_metadata.arg_model = _RawArguments
    if long_running:
        jobs.long_tools_of(mcp).add(name)
        tool.parameters["properties"]["wait_s"] = jobs.wait_s_schema(cfg)
        # Published: the result's and the job handle's properties side by side (see jobs.result_or_job_schema).
        tool.fn_metadata.output_schema = jobs.result_or_job_schema(result_model)
