"""Everything around the tensorize core: exact statistics from histograms, the k x k preview, the saved tensor,
and the interactive view's pixel sample."""

from __future__ import annotations

import base64
import math
from typing import TYPE_CHECKING, Literal

import torch

from tools.config import LabConfig
from tools.paths import new_output_path, output_uri
from tools.tensorize.schema import (
    ChannelPreview,
    ChannelStats,
    SavedTensor,
    TensorizeInput,
    TensorView,
)

if TYPE_CHECKING:
    from tools.tensorize.core import Core


def histogram(core: Core):
    """(C, 256) int64 counts of each uint8 level, per channel, over the cropped region."""

    im = core.pixels if core.plan.crop_box is None else core.pixels.crop(core.plan.crop_box)
    return torch.tensor(im.histogram(), dtype=torch.int64).view(len(core.plan.channels), 256)


def stats(counts, lut, names) -> list[ChannelStats]:
    n = counts.sum(dim=1, keepdim=True).double()
    present = counts > 0
    mean = (counts * lut).sum(dim=1, keepdim=True) / n
    var = (counts * (lut - mean) ** 2).sum(dim=1, keepdim=True) / (n - 1).clamp(min=1)
    out = []
    for i, name in enumerate(names):
        vals = lut[i][present[i]]
        out.append(
            ChannelStats(
                channel=name,
                min=round(float(vals.min()), 6),
                max=round(float(vals.max()), 6),
                mean=round(float(mean[i]), 6),
                std=round(float(var[i].sqrt()), 6),
            )
        )
    return out


def preview(x, args: TensorizeInput, names) -> list[ChannelPreview]:
    t = x[0] if args.batch else x
    t = t if args.layout == "CHW" else t.permute(2, 0, 1)
    k = args.preview_size
    block = t[:, :k, :k].double()
    return [
        ChannelPreview(channel=name, values=[[round(float(v), 4) for v in row] for row in block[i].tolist()])
        for i, name in enumerate(names)
    ]


def save_tensor(x, args: TensorizeInput, cfg: LabConfig, meta: dict[str, str]) -> SavedTensor:
    x = x.contiguous()
    path = new_output_path(cfg, "tensors", "." + args.save)
    if args.save == "pt":
        torch.save(x, path)
        load = f'x = torch.load("{path}")'
    elif args.save == "npy":
        import numpy as np

        np.save(path, x.numpy())
        load = f'x = torch.from_numpy(np.load("{path}"))'
    else:
        from safetensors.torch import save_file

        save_file({"image": x}, str(path), metadata=meta)
        load = f'from safetensors.torch import load_file\nx = load_file("{path}")["image"]'
    fmt: Literal["pt", "npy", "safetensors"] = args.save  # type: ignore[assignment]  # never "none" here
    return SavedTensor(
        format=fmt, path=str(path), uri=output_uri(cfg, path), bytes=path.stat().st_size, load_code=load
    )


VIEW_SIDE = 48  # sampled pixels per side, for the view: at most 48 x 48 x 4 bytes, 9 kB of base64


def view_sample(core: Core) -> TensorView:
    """What the tensor view needs: every `stride`-th pixel's raw levels (nearest, so every value shown is a real
    one) and the core's own table of the value each level became (normalisation and dtype included), so the
    view looks values up and computes none."""
    import numpy as np

    im = core.pixels if core.plan.crop_box is None else core.pixels.crop(core.plan.crop_box)
    w, h = im.size
    stride = max(1, math.ceil(max(w, h) / VIEW_SIDE))
    a = np.asarray(im).reshape(h, w, -1)[::stride, ::stride]  # (h', w', C) uint8
    table = core.lut.numpy().astype("<f4")  # (C, 256)
    return TensorView(
        width=a.shape[1],
        height=a.shape[0],
        stride=stride,
        pixels_b64=base64.b64encode(np.ascontiguousarray(a).tobytes()).decode("ascii"),
        lut_b64=base64.b64encode(table.tobytes()).decode("ascii"),
    )
