"""The picture of a tokenized text, as tokenizer playgrounds draw it: each token a coloured box, its id below.

Drawn with Pillow: matplotlib's bundled DejaVu Sans for Latin text, the package's CJK font (tools/fonts.py) for the
characters DejaVu lacks. A character neither font has (a rare hanzi outside the shipped subset, most emoji) is
written as its code point (U+9F98); the structured result always carries the real text.
"""

from __future__ import annotations

import io
from functools import lru_cache

from matplotlib import font_manager
from matplotlib.ft2font import FT2Font

from tools.tokenize_text.schema import Tokenized

WIDTH = 1000
PAD = 12
COLOURS = ["#ffd6a5", "#caffbf", "#9bf6ff", "#bdb2ff", "#ffc6ff", "#fdffb6", "#a0c4ff", "#ffadad"]
MAX_TOKENS_DRAWN = 300


@lru_cache(maxsize=1)
def _fonts():
    from PIL import ImageFont

    from tools.fonts import cjk_codepoints, cjk_pil_font

    path = font_manager.findfont("DejaVu Sans")
    latin = (ImageFont.truetype(path, 17), frozenset(FT2Font(path).get_charmap()))
    return latin, (cjk_pil_font(17), cjk_codepoints()), ImageFont.truetype(path, 11)


def _runs(text: str) -> list[tuple[str, object]]:
    """The token's text as (piece, font) runs: spaces and newlines made visible, each character in the first font
    that has it, a character no font has written as its code point."""
    (latin, latin_cps), (cjk, cjk_cps), _ = _fonts()
    runs: list[tuple[str, object]] = []
    for ch in text:
        ch = {" ": "␣", "\n": "↵", "\t": "→"}.get(ch, ch)
        if ord(ch) in latin_cps:
            piece, font = ch, latin
        elif ord(ch) in cjk_cps:
            piece, font = ch, cjk
        else:
            piece, font = f"U+{ord(ch):04X}", latin
        if runs and runs[-1][1] is font:
            runs[-1] = (runs[-1][0] + piece, font)
        else:
            runs.append((piece, font))
    return runs


def _width(runs) -> float:
    return sum(font.getlength(piece) for piece, font in runs)


def _layout(tok: Tokenized, small) -> list[tuple[int, int, list, str, int]]:
    """(x, row, runs, id, width) for each box, wrapping at WIDTH."""
    boxes, x, row = [], PAD, 0
    for t in tok.tokens[:MAX_TOKENS_DRAWN]:
        runs, tid = _runs(t.text), str(t.id)
        w = int(max(_width(runs), small.getlength(tid))) + 8
        if x + w > WIDTH - PAD and x > PAD:
            x, row = PAD, row + 1
        boxes.append((x, row, runs, tid, w))
        x += w + 3
    return boxes


def draw(parts: list[Tokenized], title: str) -> bytes:
    from PIL import Image, ImageDraw

    small = _fonts()[2]
    row_h, head_h = 46, 26
    layouts = [_layout(p, small) for p in parts]
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
        for i, (x, row, runs, tid, w) in enumerate(lay):
            y = y0 + row * row_h
            d.rectangle((x, y, x + w, y + 24), fill=COLOURS[i % len(COLOURS)], outline="#888888")
            tx = x + 4
            for piece, font in runs:
                d.text((tx, y + 2), piece, fill="black", font=font)
                tx += font.getlength(piece)
            d.text((x + 4, y + 27), tid, fill="#555555", font=small)
        y0 += row_h * (1 + max((b[1] for b in lay), default=0)) + PAD
    buf = io.BytesIO()
    im.save(buf, "PNG", optimize=True)
    return buf.getvalue()
