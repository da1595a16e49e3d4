"""generate_image and list_models: text-to-image and image-to-image with a real latent diffusion pipeline, offline.

Importing this package loads only the argument and result models; torch and diffusers load on the first call.
"""

from __future__ import annotations

from tools import diffusion_models as dm
from tools.common import Reporter, ToolOutput
from tools.config import LabConfig
from tools.generate.schema import GenerateInput, GenerateResult

__all__ = ["GenerateInput", "GenerateResult", "list_models", "run"]


def run(args: GenerateInput, cfg: LabConfig, reporter: Reporter | None = None) -> ToolOutput:
    """Check, load, encode, denoise, decode. See `pipeline.generate`."""
    from tools.generate.pipeline import generate

    return generate(args, cfg, reporter)


def list_models(args: dm.ListModelsInput, cfg: LabConfig, reporter: Reporter | None = None) -> ToolOutput:
    result = dm.list_models(cfg)
    lines = [f"{m.name} ({m.kind}, {m.native_size}x{m.native_size}, {m.pipeline})" for m in result.models]
    return ToolOutput(
        result=result,
        summary="Models: "
        + "; ".join(lines)
        + (f". Problems: {'; '.join(result.problems)}" if result.problems else ""),
    )
