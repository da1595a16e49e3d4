"""Re-colour and move flat-coloured teaching pictures, so that a taught word binds to the outline alone.

Eight pictures of a star show eight colours on eight backgrounds in four or five places; taught from them alone,
the word also learns those colours and places. Measured (bench/bench_teach.py, stars, seed 9, 96 prompts): with no
training picture in the top left, 39% of "a ... star in the top left ..." prompts drew a star, against 88-94% in
the bottom corners, where four of the eight pictures were.

A picture made of one flat colour on another is `bg + alpha * (fg - bg)` per pixel, with `alpha` the shape's
coverage (its anti-aliased edges in between). `unmix` finds bg, fg and alpha; `variants` re-draws the same alpha
with other named colours (tools.scenes.COLOURS) and moved to other named places (tools.scenes.POSITIONS): the
outline, its size and its edges stay exactly the user's. What kohya_ss calls colour and crop augmentation, made
for flat pictures; a picture that is not flat (a photo, a gradient) is left as it is (`unmix` returns None).
Mirroring is not done: a shape that is not left-right symmetric would learn its mirror image too.

numpy only. Each variant is captioned by the user's template, with its new colour, background and place and the
picture's other attributes as the pixel checker read them (teach_image.lab); only what the template names varies.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass

import numpy as np

from tools import scenes

# mean absolute difference (0-255, per channel) between a picture and its flat re-draw above which it is not flat
MAX_UNMIX_ERROR = 6.0


@dataclass(frozen=True)
class Unmixed:
    background: np.ndarray  # (3,) float RGB
    foreground: np.ndarray  # (3,) float RGB
    alpha: np.ndarray  # (64, 64) float in [0, 1]: the shape's coverage
    error: float  # mean absolute difference of the re-draw from the picture


def unmix(image: np.ndarray) -> Unmixed | None:
    """bg, fg and coverage of a (64, 64, 3) uint8 picture of one flat-coloured thing on a flat background, found
    as tools.scenes.check_image finds them; None when there is no such thing or the re-draw misses the picture."""
    px = image.astype(np.float32)
    bg = scenes.background_rgb(px)
    fg = scenes.foreground_rgb(px, bg)
    if fg is None:
        return None
    span = fg - bg  # (3,)
    if float(np.linalg.norm(span)) < 60:  # the core's median fell back near the background: no one thing
        return None
    # the least-squares alpha of each pixel on the line from bg to fg: exact for anti-aliased edges
    alpha = np.clip(((px - bg) @ span) / float(span @ span), 0.0, 1.0)
    redraw = bg + alpha[..., None] * span
    error = float(np.abs(redraw - px).mean())
    if not error <= MAX_UNMIX_ERROR:
        return None
    return Unmixed(bg, fg, alpha, error)


def _shift(alpha: np.ndarray, dx: int, dy: int) -> np.ndarray:
    out = np.zeros_like(alpha)
    h, w = alpha.shape
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[yd, xd] = alpha[ys, xs]
    return out


def _tinted(name: str, a: int, rng: random.Random) -> np.ndarray:
    """(3,) the named colour moved by up to `a` per channel, as tools.scenes tints its renders."""
    tint = (rng.randint(-a, a), rng.randint(-a, a), rng.randint(-a, a))
    return np.array(scenes._clip(scenes.COLOURS[name], tint), dtype=np.float64)


VARIED = ("colour", "background", "position")


def variants(
    u: Unmixed, n: int, rng: random.Random, vary: tuple[str, ...] = VARIED
) -> list[tuple[np.ndarray, dict[str, str]]]:
    """`n` re-draws of the unmixed picture: each with a random named colour on another random named background
    (small tints, as tools.scenes draws them) and moved so that its box is centred on a random named position
    (+-2 pixels), never off the picture; what is not in `vary` stays the picture's own. Each as ((64, 64, 3)
    uint8, the attributes in `vary` it now has)."""
    rows = np.nonzero(u.alpha.max(axis=1) > 0.5)[0]
    cols = np.nonzero(u.alpha.max(axis=0) > 0.5)[0]
    if len(rows) == 0:
        return []
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    side = scenes.IMAGE_SIZE
    out = []
    # a colour kept is never drawn over by the other: a white star stays off white backgrounds
    own_bg = None if "background" in vary else scenes._nearest_colour(u.background)
    own_fg = None if "colour" in vary else scenes._nearest_colour(u.foreground, exclude=own_bg)
    for _ in range(n):
        colour = rng.choice([c for c in scenes.COLOURS if c != own_bg])
        background = rng.choice([c for c in scenes.COLOURS if c not in (colour, own_fg)])
        position = rng.choice(list(scenes.POSITIONS))
        px, py = scenes.POSITIONS[position]
        dx = round(px + rng.uniform(-2, 2) - cx)
        dy = round(py + rng.uniform(-2, 2) - cy)
        dx = min(max(dx, 1 - x0), side - 1 - x1)  # keep a pixel of background on every side
        dy = min(max(dy, 1 - y0), side - 1 - y1)
        fg = _tinted(colour, 12, rng) if "colour" in vary else u.foreground
        bg = _tinted(background, 8, rng) if "background" in vary else u.background
        alpha = _shift(u.alpha, dx, dy)[..., None] if "position" in vary else u.alpha[..., None]
        picture = np.clip(np.round(bg + alpha * (fg - bg)), 0, 255).astype(np.uint8)
        attrs = {"colour": colour, "background": background, "position": position}
        out.append((picture, {k: v for k, v in attrs.items() if k in vary}))
    return out


def expand(
    images: list[np.ndarray],
    attributes: list[dict[str, str | None]],
    template: str,
    word: str,
    n: int,
    rng: random.Random,
) -> tuple[list[np.ndarray], list[str], list[int]]:
    """`n` variants of each flat picture, captioned by `template` with the variant's colour, background and
    position and the picture's other `attributes` (its size as read or drawn). Only what the template names is
    varied: a template without {colour} keeps each picture's colours (the word may then mean a red thing), one
    naming none of the three makes no copies. (variants, their captions, the indices of the `images` that are not
    flat and got none)."""
    named = {f[1] for f in string.Formatter().parse(template) if f[1] is not None}
    vary = tuple(k for k in VARIED if k in named)
    if not vary or n == 0:
        return [], [], []
    pictures: list[np.ndarray] = []
    captions: list[str] = []
    not_flat = []
    for i, (image, attrs) in enumerate(zip(images, attributes, strict=True)):
        u = unmix(image)
        if u is None:
            not_flat.append(i)
            continue
        for picture, moved in variants(u, n, rng, vary):
            pictures.append(picture)
            captions.append(template.format(word=word, **{**attrs, **moved}))
    return pictures, captions, not_flat
