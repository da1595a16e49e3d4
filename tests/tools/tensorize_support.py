"""Shared by the tensorize tests: photo-like test images, the folders and config, the core on a path, the by-hand
pipeline the tool is checked against."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tools.config import LabConfig
from tools.images import open_image_input
from tools.tensorize import TensorizeInput
from tools.tensorize.core import plan, tensorize_core


def _smooth_rgb(w: int, h: int, seed: int = 0) -> np.ndarray:
    """Smooth gradients plus a little noise: photo-like, so JPEG keeps it close."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack(
        [xx * 255 / max(w - 1, 1), yy * 255 / max(h - 1, 1), (xx + yy) * 127 / max(w + h - 2, 1)], -1
    )
    return np.clip(base + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)


def core(path: Path | str, cfg: LabConfig, **kwargs):
    """The tool's core on `path`: (tensor, plan). No statistics, no picture."""
    args = TensorizeInput(image=str(path), **kwargs)
    im = open_image_input(args.image, cfg).image
    p = plan(im, args, cfg)
    return tensorize_core(im, args, p).tensor, p


def by_hand(im: Image.Image, mode: str = "RGB") -> torch.Tensor:
    """The plain pipeline: PIL -> numpy -> torch.from_numpy(...).permute(2, 0, 1).float() / 255."""
    a = np.array(im.convert(mode))
    a = a[..., None] if a.ndim == 2 else a
    return torch.from_numpy(a).permute(2, 0, 1).float() / 255


def run_code(code: str) -> torch.Tensor:
    scope: dict = {}
    exec(code, scope)
    return scope["x"]
