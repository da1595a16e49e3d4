"""The tensorize_image picture: the image, one heatmap of tensor values per channel, per-channel histograms."""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING

from tools.images import new_figure

if TYPE_CHECKING:
    from tools.tensorize.core import Core

PICTURE_SIDE = 256  # the picture is drawn from a copy reduced to at most this many pixels a side


def draw(core: Core, counts, names, normalize: str) -> bytes:
    """Image | one heatmap per channel (tensor values) / per-channel histogram, from a reduced copy."""
    import numpy as np

    im = core.pixels
    box = core.plan.crop_box or (0, 0, *im.size)
    factor = max(1, math.ceil(max(box[2] - box[0], box[3] - box[1]) / PICTURE_SIDE))
    small = im.reduce(factor, box=box) if factor > 1 else im.crop(box)
    a = np.asarray(small).reshape(small.size[1], small.size[0], -1)
    lut = core.lut.numpy()
    c = len(names)
    fig, axes = new_figure(2, c + 1, figsize=(2.6 * (c + 1), 5.2), gridspec_kw={"height_ratios": [1.3, 1]})
    axes[0, 0].imshow(small.convert("RGBA" if c == 4 else "RGB"), interpolation="nearest")
    axes[0, 0].set_title(f"image {box[2] - box[0]}x{box[3] - box[1]}", fontsize=9)
    colours = {"R": "tab:red", "G": "tab:green", "B": "tab:blue", "A": "0.4", "L": "0.2"}
    for i, name in enumerate(names):
        ax = axes[0, i + 1]
        shown = ax.imshow(lut[i][a[..., i]], cmap="viridis", interpolation="nearest")
        ax.set_title(f"channel {name}", fontsize=9)
        fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.03).ax.tick_params(labelsize=7)
    for ax in axes[0]:
        ax.set_xticks([])
        ax.set_yticks([])
    gs = axes[1, 0].get_gridspec()
    for ax in axes[1]:
        ax.remove()
    hist = fig.add_subplot(gs[1, :])
    for i, name in enumerate(names):
        hist.plot(lut[i], counts[i].numpy(), drawstyle="steps-mid", color=colours[name], label=name, lw=1)
    hist.set_xlabel(f"tensor value (normalize={normalize})", fontsize=8)
    hist.set_ylabel("pixels", fontsize=8)
    hist.tick_params(labelsize=7)
    hist.legend(fontsize=7)
    hist.set_title("per-channel histogram", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)  # one draw; tight_layout already placed everything
    return buf.getvalue()
