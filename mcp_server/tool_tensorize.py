"""MCP registration of tensorize_image (the work is in tools/tensorize/)."""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

from mcp_server.adapter import WRITES_NEW_FILES, register_tool
from tools import tensorize
from tools.config import LabConfig

DESCRIPTION = """\
Turn an image into a real PyTorch tensor and show what it looks like: shape, dtype, layout, per-channel
min/max/mean/std, the top-left k x k values of each channel, its size in bytes, and the exact torch code
that rebuilds it.

Use it when someone asks what a picture "is" to a neural network, how ToTensor / Normalize / ImageNet
statistics / [-1, 1] scaling change the numbers, CHW vs HWC, what a batch dimension is, or wants the tensor
saved to load in their own code.

Input `image`: a file path under an allowed folder, a data:image/...;base64 URI, bare base64, or an
mllab://outputs/... URI from an earlier call. Options: mode (RGB | L | RGBA), resize (longest side, or
[width, height]), shorter_side (torchvision's Resize(256)), center_crop, normalize (none | unit | imagenet | minus_one_one | custom with mean/std),
layout (CHW | HWC), batch, dtype (float32 | float16 | bfloat16 | uint8; uint8 only with normalize=none),
save (none | pt | npy | safetensors), preview_size (1-16).

Returns structured numbers (steps applied, torch_code, stats, preview, saved file path/URI with load code)
and one picture: the image, each channel as a heatmap of its tensor values, and per-channel histograms.
Writes only new files under the server's output folder (the picture, and the tensor if save is set).
"""


def register(mcp: MCPServer, cfg: LabConfig) -> None:
    register_tool(
        mcp,
        cfg,
        name="tensorize_image",
        title="Image -> tensor",
        description=DESCRIPTION,
        input_model=tensorize.TensorizeInput,
        result_model=tensorize.TensorizeResult,
        run=tensorize.run,
        annotations=WRITES_NEW_FILES,  # the picture, and the tensor if save is set
    )
