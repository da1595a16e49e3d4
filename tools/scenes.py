"""Procedural scenes for the built-in text-to-image model: vocabulary, sampler, renderer, prompts, pixel checker.

A scene is one flat-coloured shape on a flat background, 64x64 RGB. Everything here is numpy + PIL so that
the training script, the tests and the adherence benchmark share one definition of the world the model learns.
The pixel checker reads a (generated) image back into attributes; on rendered ground truth it is exact.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image, ImageDraw

IMAGE_SIZE = 64

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (240, 220, 50),
    "orange": (245, 140, 30),
    "purple": (140, 60, 190),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}
SHAPES = ("circle", "square", "triangle")
# half extent in pixels: the shape spans 2 * h pixels across
SIZES: dict[str, int] = {"small": 6, "medium": 10, "large": 14}
# centre of the shape's bounding box, (x, y) in pixels
POSITIONS: dict[str, tuple[int, int]] = {
    "top left": (18, 18),
    "top right": (46, 18),
    "bottom left": (18, 46),
    "bottom right": (46, 46),
    "center": (32, 32),
}

# (foreground colour, shape, position) never drawn by the training sampler; the eval list asks for them
HELD_OUT: frozenset[tuple[str, str, str]] = frozenset(
    {
        ("red", "triangle", "top left"),
        ("blue", "circle", "bottom right"),
        ("green", "square", "center"),
        ("yellow", "circle", "top right"),
        ("purple", "triangle", "bottom left"),
        ("white", "square", "top left"),
        ("orange", "circle", "center"),
        ("black", "triangle", "top right"),
    }
)

# every word a prompt can contain; the tokenizer makes each of them one token
FUNCTION_WORDS = ("a", "an", "the", "in", "at", "on", "with", "and", "of", "background", "corner", "shape")
VOCABULARY: tuple[str, ...] = tuple(
    dict.fromkeys(
        [*COLOURS, *SHAPES, *SIZES, *(w for p in POSITIONS for w in p.split()), *FUNCTION_WORDS, "middle"]
    )
)
PUNCTUATION = (",", ".")

ATTRIBUTES = ("background", "colour", "shape", "position", "size")


@dataclass(frozen=True)
class Scene:
    colour: str
    shape: str
    size: str
    position: str
    background: str
    dx: float = 0.0  # jitter of the centre, pixels
    dy: float = 0.0
    dsize: float = 0.0  # jitter of the half extent, pixels
    tint: tuple[int, int, int] = (0, 0, 0)  # jitter of the foreground colour
    bg_tint: tuple[int, int, int] = (0, 0, 0)

    def attributes(self) -> dict[str, str]:
        return {
            "background": self.background,
            "colour": self.colour,
            "shape": self.shape,
            "position": self.position,
            "size": self.size,
        }


def sample_scene(rng: random.Random, jitter: bool = True, allow_held_out: bool = False) -> Scene:
    """One random scene; combinations in HELD_OUT are never returned unless allow_held_out."""
    while True:
        colour = rng.choice(list(COLOURS))
        shape = rng.choice(SHAPES)
        position = rng.choice(list(POSITIONS))
        if allow_held_out or (colour, shape, position) not in HELD_OUT:
            break
    background = rng.choice([c for c in COLOURS if c != colour])
    size = rng.choice(list(SIZES))
    if not jitter:
        return Scene(colour, shape, size, position, background)

    def tint(a: int) -> tuple[int, int, int]:
        return (rng.randint(-a, a), rng.randint(-a, a), rng.randint(-a, a))

    return Scene(
        colour,
        shape,
        size,
        position,
        background,
        dx=rng.uniform(-2, 2),
        dy=rng.uniform(-2, 2),
        dsize=rng.uniform(-1, 1),
        tint=tint(12),
        bg_tint=tint(8),
    )


def _clip(rgb: tuple[int, int, int], tint: tuple[int, int, int]) -> tuple[int, int, int]:
    return tuple(int(min(255, max(0, c + t))) for c, t in zip(rgb, tint, strict=True))  # type: ignore[return-value]


_SUPERSAMPLE = 4


def render(scene: Scene) -> np.ndarray:
    """(64, 64, 3) uint8; drawn at 4x and box-filtered down, so edges are anti-aliased."""
    s = _SUPERSAMPLE
    img = Image.new("RGB", (IMAGE_SIZE * s, IMAGE_SIZE * s), _clip(COLOURS[scene.background], scene.bg_tint))
    draw = ImageDraw.Draw(img)
    px, py = POSITIONS[scene.position]
    cx, cy, h = (px + scene.dx) * s, (py + scene.dy) * s, (SIZES[scene.size] + scene.dsize) * s
    fill = _clip(COLOURS[scene.colour], scene.tint)
    if scene.shape == "circle":
        draw.ellipse([cx - h, cy - h, cx + h, cy + h], fill=fill)
    elif scene.shape == "square":
        draw.rectangle([cx - h, cy - h, cx + h, cy + h], fill=fill)
    else:  # triangle pointing up
        draw.polygon([(cx, cy - h), (cx - h, cy + h), (cx + h, cy + h)], fill=fill)
    return np.asarray(img.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BOX))


# ---------------------------------------------------------------- prompts

_TEMPLATES = (
    "a {obj} in the {pos} on a {bg} background",
    "{obj}, {pos}, {bg} background",
    "a {obj} at the {pos}, {bg} background",
    "on a {bg} background, a {obj} in the {pos}",
    "{bg} background with a {obj} in the {pos}",
    "{obj} in {pos} on {bg} background",
    "a {bg} background and a {obj} in the {pos}",
    "in the {pos}, a {obj} on a {bg} background",
)


def _object_phrase(colour: str | None, shape: str | None, size: str | None) -> str:
    return " ".join(w for w in (size, colour, shape or "shape") if w)


def _position_phrase(position: str, rng: random.Random | None) -> str:
    if rng is None:
        return position
    if position == "center":
        return rng.choice(("center", "center", "middle"))
    return position + (" corner" if rng.random() < 0.3 else "")


def canonical_prompt(attrs: dict[str, str]) -> str:
    """The first template with every attribute: the phrasing the eval list mostly uses."""
    return _TEMPLATES[0].format(
        obj=_object_phrase(attrs["colour"], attrs["shape"], attrs["size"]),
        pos=attrs["position"],
        bg=attrs["background"],
    )


def describe(scene: Scene, rng: random.Random, p_empty: float = 0.1, p_drop: float = 0.12) -> str:
    """A training prompt for the scene: random phrasing, attributes dropped at random, sometimes empty (for CFG)."""
    if rng.random() < p_empty:
        return ""
    keep = {a: rng.random() >= p_drop for a in ATTRIBUTES}
    obj = _object_phrase(
        scene.colour if keep["colour"] else None,
        scene.shape if keep["shape"] else None,
        scene.size if keep["size"] else None,
    )
    pos = _position_phrase(scene.position, rng) if keep["position"] else None
    bg = scene.background if keep["background"] else None
    template = rng.choice(_TEMPLATES)
    if pos is None:  # remove the position clause from the template
        template = template.replace(" in the {pos}", "").replace(" at the {pos}", "").replace(", {pos}", "")
        template = template.replace("in the {pos}, ", "").replace(" in {pos}", "")
    if bg is None:
        template = template.replace(" on a {bg} background", "").replace(", {bg} background", "")
        template = template.replace("on a {bg} background, ", "").replace("{bg} background with ", "")
        template = template.replace(" on {bg} background", "").replace("a {bg} background and ", "")
    text = template.format(obj=obj, pos=pos, bg=bg)
    if text.startswith("a ") and rng.random() < 0.2:  # people drop the article
        text = text[2:]
    return text


# ---------------------------------------------------------------- evaluation prompts


def eval_cases(n_random: int = 48, seed: int = 1234) -> list[dict[str, str]]:
    """Fixed evaluation list: every held-out combination (twice, two phrasings) plus seeded random full scenes.

    Each case is the expected attributes plus "prompt" and "held_out" ("yes"/"no").
    """
    rng = random.Random(seed)
    cases: list[dict[str, str]] = []
    for i, (colour, shape, position) in enumerate(sorted(HELD_OUT)):
        for k in range(2):
            bg = rng.choice([c for c in COLOURS if c != colour])
            attrs = {"background": bg, "colour": colour, "shape": shape, "position": position}
            attrs["size"] = list(SIZES)[(i + k) % 3]
            prompt = canonical_prompt(attrs) if k == 0 else describe_full(attrs, rng)
            cases.append({**attrs, "prompt": prompt, "held_out": "yes"})
    for _ in range(n_random):
        scene = sample_scene(rng, jitter=False)
        attrs = scene.attributes()
        prompt = canonical_prompt(attrs) if rng.random() < 0.5 else describe_full(attrs, rng)
        cases.append({**attrs, "prompt": prompt, "held_out": "no"})
    return cases


def describe_full(attrs: dict[str, str], rng: random.Random) -> str:
    """A random phrasing that keeps every attribute."""
    obj = _object_phrase(attrs["colour"], attrs["shape"], attrs["size"])
    return rng.choice(_TEMPLATES).format(obj=obj, pos=attrs["position"], bg=attrs["background"])


# ---------------------------------------------------------------- pixel checker


def _nearest_colour(rgb: np.ndarray, exclude: str | None = None) -> str:
    names = [c for c in COLOURS if c != exclude]
    table = np.array([COLOURS[c] for c in names], dtype=np.float32)
    return names[int(np.argmin(((table - rgb) ** 2).sum(axis=1)))]


def background_rgb(px: np.ndarray) -> np.ndarray:
    """(3,) the background colour of (64, 64, 3) float pixels: the median of the 2-pixel border."""
    border = np.concatenate(
        [px[:2].reshape(-1, 3), px[-2:].reshape(-1, 3), px[:, :2].reshape(-1, 3), px[:, -2:].reshape(-1, 3)]
    )
    return np.median(border, axis=0)


def foreground_rgb(px: np.ndarray, bg_rgb: np.ndarray) -> np.ndarray | None:
    """(3,) the colour of the one thing on the background (None when under 8 pixels are far from it): the median
    of its core, since blurred edges blend into the background and would pull the colour towards it."""
    d_bg = np.sqrt(((px - bg_rgb) ** 2).sum(-1))
    candidates = d_bg > 60
    if candidates.sum() < 8:
        return None
    core = d_bg >= max(60.0, 0.7 * float(np.percentile(d_bg[candidates], 90)))
    return np.median(px[core], axis=0)


def check_image(image: np.ndarray | Image.Image) -> dict[str, str | None]:
    """Read the attributes back from the pixels of a 64x64 scene (larger images are resized first).

    background: median of the 2-pixel border; foreground: pixels closer to the dominant off-background colour
    than to the background; shape: a triangle holds a quarter of its mass in the top half of its bounding box,
    a square fills the corners of the box, a circle leaves them empty; position: bounding-box centre; size: bounding-box
    extent. None where no foreground is found.
    """
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    if image.shape[:2] != (IMAGE_SIZE, IMAGE_SIZE):
        image = np.asarray(Image.fromarray(image).resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BOX))
    px = image.astype(np.float32)
    bg_rgb = background_rgb(px)
    out: dict[str, str | None] = {"background": _nearest_colour(bg_rgb)}
    out.update(colour=None, shape=None, position=None, size=None)

    fg_rgb = foreground_rgb(px, bg_rgb)
    if fg_rgb is None:
        return out
    out["colour"] = _nearest_colour(fg_rgb, exclude=out["background"])
    d_bg = np.sqrt(((px - bg_rgb) ** 2).sum(-1))
    d_fg = np.sqrt(((px - fg_rgb) ** 2).sum(-1))
    # soft coverage of each pixel by the shape: anti-aliased and blurry edges count in part
    alpha = np.clip(d_bg / (d_bg + d_fg + 1e-6), 0, 1)
    alpha[d_fg >= d_bg] = 0
    rows = np.nonzero(alpha.sum(axis=1) >= 1.0)[0]  # rows/columns with under one pixel of shape are noise
    cols = np.nonzero(alpha.sum(axis=0) >= 1.0)[0]
    if len(rows) < 2 or len(cols) < 2:
        return out
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    w, h = x1 - x0, y1 - y0
    box = alpha[y0:y1, x0:x1]
    top = box[: h // 2].sum() / max(box[: h // 2 * 2].sum(), 1e-6)  # triangle ~0.25, circle and square 0.5
    k = max(1, min(w, h) // 4)  # a square fills the corners of its box, a circle leaves them empty
    corners = np.mean([box[:k, :k].mean(), box[:k, -k:].mean(), box[-k:, :k].mean(), box[-k:, -k:].mean()])
    # thresholds halfway between the classes on ground truth (circle corners <= 0.39, square >= 0.6)
    out["shape"] = "triangle" if top < 0.4 else "square" if corners > 0.45 else "circle"
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    if abs(cx - 32) < 7 and abs(cy - 32) < 7:
        out["position"] = "center"
    else:
        out["position"] = ("top" if cy < 32 else "bottom") + " " + ("left" if cx < 32 else "right")
    extent = (w + h) / 2
    out["size"] = "small" if extent < 16 else "medium" if extent < 24 else "large"
    return out


def score(cases: list[dict[str, str]], images: list[np.ndarray]) -> dict[str, float]:
    """Fraction of images whose checked attribute matches the case, per attribute (and all five at once)."""
    hits = {a: 0 for a in ATTRIBUTES} | {"all": 0}
    for case, img in zip(cases, images, strict=True):
        got = check_image(img)
        ok = [got[a] == case[a] for a in ATTRIBUTES]
        for a, k in zip(ATTRIBUTES, ok, strict=True):
            hits[a] += int(k)
        hits["all"] += int(all(ok))
    return {a: v / max(1, len(cases)) for a, v in hits.items()}


def scene_dict(scene: Scene) -> dict:
    return asdict(scene)
