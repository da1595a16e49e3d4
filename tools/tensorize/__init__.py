"""tensorize_image: show what an image becomes as a PyTorch tensor (shape, values, channels, normalization).

Importing this package loads only the argument and result models; torch, NumPy and Pillow load on the first call.
"""

from __future__ import annotations

from tools.common import Reporter, ToolOutput
from tools.config import LabConfig
from tools.tensorize.schema import TensorizeInput, TensorizeResult

__all__ = ["TensorizeInput", "TensorizeResult", "run"]


def run(args: TensorizeInput, cfg: LabConfig, reporter: Reporter | None = None) -> ToolOutput:
    """Open, plan, decode to a tensor, then statistics, preview, saved file and picture. See `core.tensorize`."""
    from tools.tensorize.core import tensorize

    return tensorize(args, cfg, reporter)
