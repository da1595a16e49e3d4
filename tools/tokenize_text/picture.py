"""The picture of a tokenized text, as tokenizer playgrounds draw it: each token a coloured box, its id below.

Drawn with Pillow and matplotlib's bundled DejaVu Sans. That font has no CJK glyphs, so a character it lacks is
written as its code point (U+8349); the structured result always carries the real text.
"""

from __future__ import annotations

import io
from functools import lru_cache

from tools.tokenize_text.schema import Tokenized

WIDTH = 1000
PAD = 12
COLOURS = ["#ffd6a5", "#caffbf", "#9bf6ff", "#bdb2ff", "#ffc6ff", "#fdffb6", "#a0c4ff", "#ffadad"]
MAX_TOKENS_DRAWN = 300


@lru_cache(maxsize=1)
def _fonts():
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font
    from PIL import ImageFont

    path = font_manager.findfont("DejaVu Sans")
    return ImageFont.truetype(path, 17), ImageFont.truetype(path, 11), FT2Font(path)


def _visible(text: str) -> str:
    """Spaces and newlines made visible; characters the font lacks written as code points."""
    ft = _fonts()[2]
    out = []
    for ch in text:
        if ch == " ":
            out.append("␣")
        elif ch == "\n":
            out.append("↵")
        elif ch == "\t":
            out.append("→")
        elif ft.get_char_index(ord(ch)) == 0:
            out.append(f"U+{ord(ch):04X}")
        else:
            out.append(ch)
    return "".join(out)


def _layout(tok: Tokenized, big, small) -> list[tuple[int, int, str, str, int]]:
    """(x, row, text, id, width) for each box, wrapping at WIDTH."""
    boxes, x, row = [], PAD, 0
    for t in tok.tokens[:MAX_TOKENS_DRAWN]:
        label, tid = _visible(t.text), str(t.id)
        w = int(max(big.getlength(label), small.getlength(tid))) + 8
        if x + w > WIDTH - PAD and x > PAD:
            x, row = PAD, row + 1
        boxes.append((x, row, label, tid, w))
        x += w + 3
    return boxes


def draw(parts: list[Tokenized], title: str) -> bytes:
    from PIL import Image, ImageDraw

    big, small, _ = _fonts()
    row_h, head_h = 46, 26
    layouts = [_layout(p, big, small) for p in parts]
    height = (
        PAD + sum(head_h + row_h * (1 + (max((b[1] for b in lay), default=0))) + PAD for lay in layouts) + 22
    )
    im = Image.new("RGB", (WIDTH, height), "white")
    d = ImageDraw.Draw(im)
    d.text((PAD, 6), title[:140], fill="#333333", font=small)
    y0 = 22
    for part, lay in zip(parts, layouts, strict=True):
        d.text(
            (PAD, y0 + 4),
            f"{part.n_characters} characters, {part.n_bytes} bytes -> {part.n_tokens} tokens "
            f"({part.characters_per_token} characters per token)",
            fill="black",
            font=small,
        )
        y0 += head_h
        for i, (x, row, label, tid, w) in enumerate(lay):
            y = y0 + row * row_h
            d.rectangle((x, y, x + w, y + 24), fill=COLOURS[i % len(COLOURS)], outline="#888888")
            d.text((x + 4, y + 2), label, fill="black", font=big)
            d.text((x + 4, y + 27), tid, fill="#555555", font=small)
        y0 += row_h * (1 + max((b[1] for b in lay), default=0)) + PAD
    buf = io.BytesIO()
    im.save(buf, "PNG", optimize=True)
    return buf.getvalue()
