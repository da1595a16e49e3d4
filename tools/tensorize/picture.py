"""The tensorize_image picture, drawn directly with Pillow: the image, one heatmap per channel with its colour
bar, and the per-channel histogram of tensor values with labelled axes and a legend.

Why Pillow and not matplotlib (bench/bench_tensorize_call.py, 12 MP JPEG): the same panels cost ~0.4-0.7 s
through matplotlib (figure, colour bars, tight_layout, Agg) and ~0.02 s drawn here, where the whole call should
cost no more than converting the image by hand. Everything is drawn from what the picture needs: heatmaps from
the reduced copy (at most PICTURE_SIDE pixels a side) mapped through the 256 values each uint8 level became,
histograms from the counts the statistics already used. The colours are matplotlib's (viridis, tab:red ...),
the text is matplotlib's own font (DejaVu Sans, shipped with matplotlib), so it reads as the plots of the
other tools.
"""

from __future__ import annotations

import functools
import io
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib import colormaps
from PIL import Image, ImageDraw, ImageFont

if TYPE_CHECKING:
    from tools.tensorize.core import Core

PICTURE_SIDE = 256  # the picture is drawn from a view reduced to at most this many pixels a side

# Sizes in pixels. Top row: the image, then one column per channel; the histogram below spans the width.
MAX_WIDTH = 1024  # the inline limit: RGBA gets 5 narrower columns
COLUMN_W = 240
BOTTOM_H = 210  # the histogram panel
BOX_H = 220  # the tallest image shown in a top panel (aspect kept)
BAR_ROOM = 78  # a column's width beside its image: margins, colour bar and tick labels
BAR_W, BAR_GAP = 11, 5  # colour bar
TITLE_H = 26
COLOURS = {
    "R": (214, 39, 40),
    "G": (44, 160, 44),
    "B": (31, 119, 180),
    "A": (102, 102, 102),
    "L": (51, 51, 51),
}
INK, FRAME = (26, 26, 26), (60, 60, 60)


@functools.cache
def _font(size: int):
    import importlib.util

    spec = importlib.util.find_spec("matplotlib")
    for folder in spec.submodule_search_locations if spec and spec.submodule_search_locations else []:
        path = Path(folder) / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
        if path.is_file():
            return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size)


@functools.cache
def _viridis() -> np.ndarray:
    """(256, 3) uint8: matplotlib's viridis colour map (read once from matplotlib)."""

    return colormaps["viridis"](np.linspace(0.0, 1.0, 256), bytes=True)[:, :3].copy()


def nice_ticks(lo: float, hi: float, most: int = 6) -> list[float]:
    """Round tick values in [lo, hi] (steps of 1, 2, 2.5 or 5 times a power of ten), as matplotlib picks them."""
    if not math.isfinite(lo) or not math.isfinite(hi) or hi <= lo:
        return [lo]
    raw = (hi - lo) / (most - 1)
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9)
    return [round(k * step, 12) for k in range(first, math.floor(hi / step + 1e-9) + 1)]


def _decimals(step: float) -> int:
    d = max(0, -math.floor(math.log10(step) + 1e-9))
    while d < 6 and abs(round(step * 10**d) - step * 10**d) > 1e-6:
        d += 1
    return d


def tick_label(value: float, ticks: list[float]) -> str:
    """A tick's text with as many decimals as the step needs; large counts as 40k or 1.2M."""
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    top = max(abs(t) for t in ticks)
    if value == 0:
        return "0"
    for div, suffix in ((1e6, "M"), (1e3, "k")):
        if top >= 10 * div or (div == 1e6 and top >= div):
            return f"{value / div:.{_decimals(step / div)}f}{suffix}"
    text = f"{value:.{_decimals(step)}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def _text(draw: ImageDraw.ImageDraw, xy, text: str, size: int, anchor: str = "la", fill=INK) -> None:
    draw.text(xy, text, font=_font(size), fill=fill, anchor=anchor)


def _fit(w: int, h: int, box_w: int, box_h: int) -> tuple[int, int]:
    k = min(box_w / w, box_h / h)
    return max(1, round(w * k)), max(1, round(h * k))


def _heatmap_panel(canvas, draw, x0: int, box_w: int, levels: np.ndarray, lut: np.ndarray, name: str) -> None:
    """One channel: its tensor values through viridis, a framed image, and a colour bar with ticks."""
    lo_level, hi_level = int(levels.min()), int(levels.max())
    vmin, vmax = float(lut[lo_level]), float(lut[hi_level])  # lut is increasing in the level
    span = vmax - vmin
    index = np.zeros(256, np.intp) if span <= 0 else np.clip(np.rint((lut - vmin) / span * 255), 0, 255)
    rgb = _viridis()[index.astype(np.intp)[levels]]  # (h, w, 3)
    h, w = levels.shape
    tw, th = _fit(w, h, box_w, BOX_H)
    left, top = x0 + 8, TITLE_H
    canvas.paste(Image.fromarray(rgb).resize((tw, th), Image.Resampling.NEAREST), (left, top))
    draw.rectangle((left - 1, top - 1, left + tw, top + th), outline=FRAME)
    _text(draw, (left + tw // 2, top - 6), f"channel {name}", 13, "ms")
    bx = left + tw + BAR_GAP
    bar = _viridis()[np.linspace(255, 0, th).round().astype(np.intp)]  # (th, 3): top is the largest value
    canvas.paste(Image.fromarray(np.repeat(bar[:, None], BAR_W, axis=1)), (bx, top))
    draw.rectangle((bx - 1, top - 1, bx + BAR_W, top + th), outline=FRAME)
    ticks = nice_ticks(vmin, vmax, 8) if span > 0 else [vmin]
    for t in ticks:
        y = top + th - 1 if span <= 0 else top + round((vmax - t) / span * (th - 1))
        draw.line((bx + BAR_W, y, bx + BAR_W + 3, y), fill=FRAME)
        _text(draw, (bx + BAR_W + 5, y), tick_label(t, ticks), 10, "lm")


def _histogram_panel(canvas, draw, y0: int, lut: np.ndarray, counts: np.ndarray, names, normalize: str):
    left, right, top, bottom = 64, canvas.width - 14, y0 + 24, y0 + BOTTOM_H - 40
    xs = lut.astype(np.float64)
    x_lo, x_hi = float(xs.min()), float(xs.max())
    pad = (x_hi - x_lo) * 0.03 or 0.5
    x_lo, x_hi = x_lo - pad, x_hi + pad
    y_hi = float(counts.max()) * 1.05 or 1.0

    def px(x):
        return left + (x - x_lo) / (x_hi - x_lo) * (right - left)

    def py(y):
        return bottom - y / y_hi * (bottom - top)

    draw.rectangle((left, top, right, bottom), outline=FRAME)
    for t in (ticks := nice_ticks(x_lo, x_hi, 9)):
        x = round(px(t))
        draw.line((x, bottom, x, bottom + 4), fill=FRAME)
        _text(draw, (x, bottom + 6), tick_label(t, ticks), 10, "ma")
    for t in (ticks := nice_ticks(0.0, y_hi, 5)):
        y = round(py(t))
        draw.line((left - 4, y, left, y), fill=FRAME)
        _text(draw, (left - 6, y), tick_label(t, ticks), 10, "rm")
    for i, name in enumerate(names):  # steps-mid: each level's count is a flat step centred on its value
        x, y = xs[i], counts[i].astype(np.float64)
        edges = np.concatenate([[x[0]], (x[1:] + x[:-1]) / 2, [x[-1]]])
        pts = np.empty((2 * len(x), 2))
        pts[0::2, 0], pts[1::2, 0] = px(edges[:-1]), px(edges[1:])
        pts[:, 1] = np.repeat(py(y), 2)
        draw.line(pts.round(1).ravel().tolist(), fill=COLOURS[name], width=1)
    _text(draw, ((left + right) // 2, top - 6), "per-channel histogram", 13, "ms")
    _text(draw, ((left + right) // 2, bottom + 22), f"tensor value (normalize={normalize})", 11, "ma")
    label = Image.new("L", (60, 16), 0)
    ImageDraw.Draw(label).text((30, 8), "pixels", font=_font(11), fill=255, anchor="mm")
    canvas.paste(INK, (10, (top + bottom) // 2 - 30), label.rotate(90, expand=True))
    lx, ly = right - 52, top + 6  # legend, top right
    draw.rectangle(
        (lx, ly, right - 6, ly + 8 + 15 * len(names)), fill=(255, 255, 255), outline=(200, 200, 200)
    )
    for i, name in enumerate(names):
        y = ly + 11 + 15 * i
        draw.line((lx + 6, y, lx + 24, y), fill=COLOURS[name], width=2)
        _text(draw, (lx + 30, y), name, 10, "lm")


def draw_picture(
    small,
    levels: np.ndarray,
    lut: np.ndarray,
    counts: np.ndarray,
    names,
    normalize: str,
    size: tuple[int, int],
) -> bytes:
    """small: the reduced (cropped) PIL image; levels: its (h, w, C) uint8 values; lut: (C, 256) the value each
    level became in the tensor; counts: (C, 256) pixels per level over the whole tensor. Returns PNG bytes."""
    c = len(names)
    col_w = min(COLUMN_W, MAX_WIDTH // (c + 1))  # RGBA: 5 narrower columns, still within the inline limit
    tw, th = _fit(small.width, small.height, col_w - BAR_ROOM, BOX_H)
    top_h = TITLE_H + th + 14
    canvas = Image.new("RGB", (col_w * (c + 1), top_h + BOTTOM_H), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    shown = small.convert("RGBA" if c == 4 else "RGB")
    if shown.mode == "RGBA":  # transparent parts on white, as a plot shows them
        shown = Image.alpha_composite(Image.new("RGBA", shown.size, (255, 255, 255, 255)), shown).convert(
            "RGB"
        )
    left, top = 8 + (col_w - 16 - tw) // 2, TITLE_H
    canvas.paste(shown.resize((tw, th), Image.Resampling.NEAREST), (left, top))
    draw.rectangle((left - 1, top - 1, left + tw, top + th), outline=FRAME)
    _text(draw, (left + tw // 2, top - 6), f"image {size[0]}x{size[1]}", 13, "ms")
    for i, name in enumerate(names):
        _heatmap_panel(canvas, draw, col_w * (i + 1), col_w - BAR_ROOM, levels[..., i], lut[i], name)
    _histogram_panel(canvas, draw, top_h, lut, counts, names, normalize)
    buf = io.BytesIO()
    canvas.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def draw(core: Core, counts, names, normalize: str) -> bytes:
    """Image | one heatmap per channel (tensor values) / per-channel histogram, from a reduced view."""
    im = core.pixels
    box = core.plan.crop_box or (0, 0, *im.size)
    size = (box[2] - box[0], box[3] - box[1])
    factor = max(1, math.ceil(max(size) / PICTURE_SIDE))
    if factor > 3:  # every (factor/2)-th pixel, then 2x2 means: 0.3 ms where a full reduce of 12 MP takes 30
        sampled = (2 * max(1, size[0] // factor), 2 * max(1, size[1] // factor))
        small = im.resize(sampled, Image.Resampling.NEAREST, box=box).reduce(2)
    else:
        small = im.reduce(factor, box=box) if factor > 1 else im.crop(box)
    levels = np.asarray(small).reshape(small.size[1], small.size[0], -1)  # (h, w, C) uint8
    return draw_picture(small, levels, core.lut.numpy(), counts.numpy(), names, normalize, size)
