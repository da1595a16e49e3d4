"""Turn a `tools` function (input model -> ToolOutput) into an MCP tool, with progress and cancellation.

This is the one boundary where any exception is caught: a tool's own errors (InvalidArgument,
ToolFailure) reach the model verbatim as ToolError; anything else is logged to stderr and reported
as an internal error, and the server keeps serving.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Annotated, Any

import anyio.from_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, ImageContent, TextContent, ToolAnnotations
from pydantic import BaseModel, Field, ValidationError

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


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem: the argument, the value given, and what pydantic wanted."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "arguments"
        value = err.get("input")
        shown = repr(value)
        if len(shown) > 100:
            shown = shown[:85] + f"... ({len(shown)} chars)"
        msg = err["msg"]
        ctx = err.get("ctx") or {}
        if "error" in ctx and isinstance(ctx["error"], InvalidArgument):
            lines.append(str(ctx["error"]))
        else:
            lines.append(f"Invalid `{loc}` = {shown}: {msg}")
    return "\n".join(lines)


def _schema_field(info) -> Any:
    """Rebuild a pydantic field for the SDK's argument model: type, constraints, description, no default."""
    extra: dict[str, Any] = {}
    if info.description:
        extra["description"] = info.description
    if info.json_schema_extra:
        extra["json_schema_extra"] = info.json_schema_extra
    if info.examples:
        extra["examples"] = info.examples
    return Annotated[(info.annotation, *info.metadata, Field(**extra))]


def to_call_result(output: ToolOutput) -> CallToolResult:
    data = output.result.model_dump(mode="json")
    content: list[Any] = []
    if output.summary:
        content.append(TextContent(type="text", text=output.summary))
    content.append(TextContent(type="text", text=json.dumps(data, ensure_ascii=False, separators=(",", ":"))))
    for img in output.images:
        content.append(
            ImageContent(
                type="image", data=base64.b64encode(img.png).decode("ascii"), mime_type=img.mime_type
            )
        )
    return CallToolResult(content=content, structured_content=data)


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
) -> None:
    """Register `run(input_model(**args), cfg, reporter) -> ToolOutput` as the MCP tool `name`.

    The inputSchema is the input model's fields (types, bounds, descriptions); the outputSchema is
    the result model. Arguments are validated twice: by the SDK against the schema, then by the
    input model itself (cross-field rules), so every refusal names the argument.
    """
    params = [
        inspect.Parameter(
            fname,
            inspect.Parameter.KEYWORD_ONLY,
            annotation=_schema_field(info),
            default=inspect.Parameter.empty
            if info.is_required()
            else info.get_default(call_default_factory=True),
        )
        for fname, info in input_model.model_fields.items()
    ]
    params.append(inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context))
    return_annotation = Annotated[CallToolResult, result_model]

    def call(**kwargs: Any) -> CallToolResult:
        ctx = kwargs.pop("ctx", None)
        try:
            args = input_model.model_validate(kwargs)
        except ValidationError as exc:
            raise ToolError(describe_validation_error(exc)) from None
        reporter = McpReporter(ctx, progress_interval_s)
        try:
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

    call.__name__ = name
    call.__doc__ = description
    call.__signature__ = inspect.Signature(params, return_annotation=return_annotation)  # type: ignore[attr-defined]
    call.__annotations__ = {"ctx": Context, "return": return_annotation}
    mcp.add_tool(
        call, name=name, title=title, description=description, annotations=annotations, structured_output=True
    )
