"""A throwaway tool that exercises every part of the shared contract, so the harness has a target of its own.

It is registered next to the real tools in every reliability server: its schema has each JSON type the
fuzzer must handle, it reads an image argument through tools.images (the same path as the real tools),
writes one generated file, reports progress tagged with its `label`, and can busy-work for `seconds`
while checking for cancellation. It is not part of the product.
"""

from __future__ import annotations

import hashlib
import math
import random
import time
from typing import Literal

from mcp.types import ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field

from mcp_server.adapter import register_tool
from tools.common import InlineImage, InvalidArgument, ToolOutput
from tools.config import LabConfig
from tools.images import decode, open_image_input, to_inline_png
from tools.paths import new_output_path, output_uri

NAME = "reliability_demo"


class DemoArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: int = Field(3, ge=1, le=1000, description="How many random numbers to draw.")
    scale: float = Field(1.0, ge=-10, le=10, allow_inf_nan=False, description="Multiplier of the numbers.")
    label: str = Field(
        "demo", min_length=1, max_length=200, description="Echoed back; tags progress messages."
    )
    mode: Literal["sum", "max"] = Field("sum", description="How the numbers are reduced.")
    values: list[float] = Field(default_factory=list, max_length=50, description="Extra numbers to add.")
    points: list[tuple[float, float]] | None = Field(None, max_length=100_000, description="Points, unused.")
    image: str | None = Field(
        None, max_length=100_000, description="Optional image (path, data: URI, base64)."
    )
    seconds: float = Field(0.0, ge=0, le=30, allow_inf_nan=False, description="Busy-work time, cancellable.")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Random seed.")


class DemoResult(BaseModel):
    value: float = Field(description="The reduced numbers.")
    label_chars: int = Field(description="Length of the label.")
    image_size: list[int] | None = Field(None, description="Width and height of the decoded image.")
    file_uri: str = Field(description="URI of the generated file.")
    file_path: str = Field(description="Path of the generated file.")
    digest: str = Field(description="Hash of the numbers, to compare runs.")
    elapsed_s: float = Field(description="Wall-clock time of the call.")


def run(args: DemoArgs, cfg: LabConfig, reporter) -> ToolOutput:
    start = time.monotonic()
    if args.seconds > cfg.limits.max_time_budget_s:
        raise InvalidArgument(
            "seconds", args.seconds, f"at most {cfg.limits.max_time_budget_s} (max_time_budget_s)"
        )
    for i, v in enumerate(args.values):
        if not math.isfinite(v):
            raise InvalidArgument(f"values[{i}]", v, "must be finite")
    rng = random.Random(args.seed)
    numbers = [rng.random() * args.scale for _ in range(args.count)] + list(args.values)
    value = sum(numbers) if args.mode == "sum" else max(numbers)
    size = None
    images = []
    if args.image is not None:
        src = open_image_input(args.image, cfg, "image")
        im = decode(src.image, "image", src.description)
        size = list(im.size)
        images.append(InlineImage(to_inline_png(im.convert("RGB"), max_side=64), "the image"))
    steps = max(1, int(args.seconds * 20))
    deadline = start + args.seconds
    for step in range(steps):
        reporter.check_cancelled()
        while time.monotonic() < min(deadline, start + (step + 1) * 0.05):
            sum(range(2000))  # busy, like a training step
        reporter.progress(step + 1, steps, f"{args.label}: step {step + 1}/{steps}")
    path = new_output_path(cfg, "runs", ".txt")
    path.write_text(repr(numbers), encoding="utf-8")
    result = DemoResult(
        value=value,
        label_chars=len(args.label),
        image_size=size,
        file_uri=output_uri(cfg, path),
        file_path=str(path),
        digest=hashlib.sha256(repr(numbers).encode()).hexdigest()[:16],
        elapsed_s=time.monotonic() - start,
    )
    return ToolOutput(result=result, images=images, summary=f"{args.label}: {value:.4f}")


def register(mcp, cfg: LabConfig) -> None:
    register_tool(
        mcp,
        cfg,
        name=NAME,
        title="Reliability demo",
        description="A test fixture tool (not part of the product).",
        input_model=DemoArgs,
        result_model=DemoResult,
        run=run,
        annotations=ToolAnnotations(readOnlyHint=False, openWorldHint=False),
    )
