"""Shapes the built-in model never saw (a star, a heart), drawn like tools/scenes.py draws its own, and a pixel
check that says which of the five outlines a picture shows.

Numpy + PIL only: the tests, bench/bench_teach.py and the docs share one definition of "shows a star".
"""

from __future__ import annotations

import math
import random

import numpy as np
from PIL import Image, ImageDraw

from tools import scenes

NEW_SHAPES = ("star", "heart")
ALL_SHAPES = (*scenes.SHAPES, *NEW_SHAPES)
MASK_SIDE = 16  # the check compares bounding-box masks resampled to 16x16


def _outline(shape: str, cx: float, cy: float, h: float) -> list[tuple[float, float]] | None:
    """Polygon of a new shape centred at (cx, cy) with half extent h (None for the three built-in shapes)."""
    if (
        shape == "star"
    ):  # five points, the top one up; inner radius 0.5 keeps the arms thick enough for a 64 px VAE
        pts = []
        for k in range(10):
            r = h if k % 2 == 0 else 0.5 * h
            a = -math.pi / 2 + k * math.pi / 5
            pts.append((cx + r * math.cos(a), cy + 0.1 * h + r * math.sin(a)))
        return pts
    if shape == "heart":  # the classic parametric heart, scaled into the 2h x 2h box
        pts = []
        for k in range(64):
            t = 2 * math.pi * k / 64
            x = 16 * math.sin(t) ** 3
            y = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
            pts.append((cx + h * x / 16.5, cy - h * (y + 2.5) / 14.5))
        return pts
    return None


def render(scene: scenes.Scene) -> np.ndarray:
    """(64, 64, 3) uint8 of a scene whose shape may also be 'star' or 'heart' (4x supersampled, as scenes.render)."""
    if scene.shape in scenes.SHAPES:
        return scenes.render(scene)
    s = 4
    size = scenes.IMAGE_SIZE * s
    img = Image.new("RGB", (size, size), scenes._clip(scenes.COLOURS[scene.background], scene.bg_tint))
    px, py = scenes.POSITIONS[scene.position]
    cx, cy, h = (px + scene.dx) * s, (py + scene.dy) * s, (scenes.SIZES[scene.size] + scene.dsize) * s
    outline = _outline(scene.shape, cx, cy, h)
    if outline is None:
        raise ValueError(f"unknown shape {scene.shape!r}; known: {ALL_SHAPES}")
    ImageDraw.Draw(img).polygon(outline, fill=scenes._clip(scenes.COLOURS[scene.colour], scene.tint))
    return np.asarray(img.resize((scenes.IMAGE_SIZE, scenes.IMAGE_SIZE), Image.Resampling.BOX))


def sample_scene(rng: random.Random, shape: str, jitter: bool = True) -> scenes.Scene:
    """A random scene (colour, size, position, background) with `shape` in it."""
    base = scenes.sample_scene(rng, jitter=jitter, allow_held_out=True)
    return scenes.Scene(
        base.colour, shape, base.size, base.position, base.background,
        base.dx, base.dy, base.dsize, base.tint, base.bg_tint,
    )  # fmt: skip


# ---------------------------------------------------------------- pixel check


def _template(shape: str) -> np.ndarray:
    """The shape's (MASK_SIDE, MASK_SIDE) coverage mask, filling its own bounding box."""
    s = MASK_SIDE * 8
    img = Image.new("L", (s, s), 0)
    draw = ImageDraw.Draw(img)
    c, h = s / 2, s / 2
    if shape == "circle":
        draw.ellipse([0, 0, s - 1, s - 1], fill=255)
    elif shape == "square":
        draw.rectangle([0, 0, s - 1, s - 1], fill=255)
    elif shape == "triangle":
        draw.polygon([(c, 0), (0, s - 1), (s - 1, s - 1)], fill=255)
    else:
        pts = np.array(_outline(shape, c, c, h))
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        pts = (pts - lo) / (hi - lo) * (s - 1)  # stretch to the box, as the check crops to the box
        draw.polygon([tuple(p) for p in pts], fill=255)
    return np.asarray(img.resize((MASK_SIDE, MASK_SIDE), Image.Resampling.BOX), dtype=np.float32) / 255


_TEMPLATES: dict[str, np.ndarray] = {}


def templates() -> dict[str, np.ndarray]:
    if not _TEMPLATES:
        _TEMPLATES.update({shape: _template(shape) for shape in ALL_SHAPES})
    return _TEMPLATES


def coverage(image: np.ndarray | Image.Image) -> np.ndarray | None:
    """The foreground's soft coverage in its bounding box, resampled to (MASK_SIDE, MASK_SIDE); None if no shape.

    Foreground as tools.scenes.check_image finds it: the border's median is the background, the core of the
    far-from-background pixels gives the shape's colour, each pixel is weighted by which of the two it is nearer.
    """
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    if image.shape[:2] != (scenes.IMAGE_SIZE, scenes.IMAGE_SIZE):
        image = np.asarray(Image.fromarray(image).resize((64, 64), Image.Resampling.BOX))
    px = image.astype(np.float32)
    bg = scenes.background_rgb(px)
    fg = scenes.foreground_rgb(px, bg)
    if fg is None:
        return None
    d_bg = np.sqrt(((px - bg) ** 2).sum(-1))
    d_fg = np.sqrt(((px - fg) ** 2).sum(-1))
    alpha = np.clip(d_bg / (d_bg + d_fg + 1e-6), 0, 1)
    alpha[d_fg >= d_bg] = 0
    rows = np.nonzero(alpha.sum(axis=1) >= 1.0)[0]
    cols = np.nonzero(alpha.sum(axis=0) >= 1.0)[0]
    if len(rows) < 4 or len(cols) < 4:
        return None
    box = alpha[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]  # (h, w)
    im = Image.fromarray((box * 255).astype(np.uint8)).resize(
        (MASK_SIDE, MASK_SIDE), Image.Resampling.BILINEAR
    )
    return np.asarray(im, dtype=np.float32) / 255


def classify(image: np.ndarray | Image.Image) -> str | None:
    """Which of ALL_SHAPES the picture's foreground matches best (least mean squared difference of the
    bounding-box masks), or None when there is no foreground."""
    mask = coverage(image)
    if mask is None:
        return None
    errors = {shape: float(((mask - t) ** 2).mean()) for shape, t in templates().items()}
    return min(errors, key=errors.__getitem__)


def shows(image: np.ndarray | Image.Image, shape: str) -> bool:
    """Whether the picture shows `shape`: it matches that outline better than the four others."""
    return classify(image) == shape
