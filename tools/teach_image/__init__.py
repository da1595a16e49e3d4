"""teach_image_model: teach the built-in image model a new word from a few pictures (LoRA + a new token).

Importing this package loads only the argument and result models; torch, diffusers and peft load on a call.
"""

from __future__ import annotations

from tools.common import Reporter, ToolOutput
from tools.config import LabConfig
from tools.teach_image.schema import TeachImageInput, TeachImageResult

__all__ = ["TeachImageInput", "TeachImageResult", "run"]


def run(args: TeachImageInput, cfg: LabConfig, reporter: Reporter) -> ToolOutput:
    """Check, caption, draw before, teach, save, draw after. See `lab.teach`."""
    from tools.teach_image.lab import teach

    return teach(args, cfg, reporter)
