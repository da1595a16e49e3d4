"""The contract every tool shares: errors, progress reporting, and tool output."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict


class ToolInput(BaseModel):
    """Base of every tool's input model: an argument the model does not have is refused by name."""

    model_config = ConfigDict(extra="forbid")


class InvalidArgument(ValueError):
    """An argument the caller can fix. The message names the argument, its value and what is allowed."""

    def __init__(self, argument: str, value: Any, allowed: str):
        self.argument = argument
        self.value = value
        self.allowed = allowed
        super().__init__(f"Invalid `{argument}` = {short_repr(value)}: {allowed}")


class ToolFailure(RuntimeError):
    """A failure that is not the caller's argument (e.g. a model folder that cannot load); readable as is."""


class Cancelled(Exception):
    """The client cancelled the call; work stopped at the next check."""


def short_repr(value: Any, limit: int = 120) -> str:
    """repr(value), cut to `limit` characters with the full length noted."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 15] + f"... ({len(text)} chars)"


class Reporter(Protocol):
    """How a tool talks back while it works. The adapter maps it to MCP progress and cancellation."""

    def progress(self, done: float, total: float | None = None, message: str | None = None) -> None: ...

    def check_cancelled(self) -> None:
        """Raise `Cancelled` if the client has cancelled the call."""
        ...

    def partial(self, result: BaseModel | dict[str, Any]) -> None:
        """The latest partial result (e.g. the loss curve so far). A job keeps it; a direct call ignores it.

        Optional: a reporter without this method is still a Reporter; call it through `report_partial`.
        """
        ...


class NullReporter:
    """The reporter for direct calls (tests, scripts): no progress, never cancelled."""

    def progress(self, done: float, total: float | None = None, message: str | None = None) -> None:
        return None

    def check_cancelled(self) -> None:
        return None

    def partial(self, result: BaseModel | dict[str, Any]) -> None:
        return None


def report_partial(reporter: Reporter, result: BaseModel | dict[str, Any]) -> None:
    """Hand `result` to the reporter's `partial`, if it has one (older reporters only report progress)."""
    method = getattr(reporter, "partial", None)
    if method is not None:
        method(result)


@dataclass
class InlineImage:
    """A compact PNG (already encoded bytes, longest side <= 1024 px) to show inline.

    The caption is sent as a text block just before the image, so the model knows what it is looking at.
    """

    png: bytes
    caption: str = ""
    mime_type: str = "image/png"


@dataclass
class ToolOutput:
    """What a tool returns: the structured result, pictures to show inline, and a short text summary."""

    result: BaseModel
    images: list[InlineImage] = field(default_factory=list)
    summary: str | None = None


def require_finite(argument: str, value: float) -> float:
    """Refuse NaN and infinities, naming the argument."""
    if not math.isfinite(value):
        raise InvalidArgument(argument, value, "must be a finite number (not NaN or infinity)")
    return value
