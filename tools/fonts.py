"""The CJK font the pictures use, shipped with the package so nothing is downloaded or installed.

matplotlib's bundled DejaVu Sans has no Chinese glyphs. tools/assets/fonts/ holds a 0.6 MB subset of Droid Sans
Fallback (Apache-2.0): ASCII, punctuation, the 3755 commonest hanzi (GB2312 level 1) and every character of the
Chinese knowledge base and labels (see its README and make_subset.py). A character outside the subset still has
no glyph. matplotlib and Pillow are imported inside the functions, so importing this module costs nothing.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

CJK_FONT = Path(__file__).parent / "assets" / "fonts" / "DroidSansFallbackSubset.ttf"


@lru_cache(maxsize=1)
def use_cjk_in_matplotlib() -> str:
    """Register the CJK font with matplotlib (once) as the fallback after DejaVu Sans; returns its family name.

    Latin text keeps DejaVu Sans; matplotlib (>= 3.6) takes each glyph DejaVu lacks from the next family of
    `font.family`, so mixed text such as "f(x)，前几步" draws in one call. Set before the Figure's texts are made.
    """
    from matplotlib import font_manager, rcParams

    font_manager.fontManager.addfont(str(CJK_FONT))
    family = font_manager.FontProperties(fname=str(CJK_FONT)).get_name()
    rcParams["font.sans-serif"] = ["DejaVu Sans", family] + [
        f for f in rcParams["font.sans-serif"] if f not in ("DejaVu Sans", family)
    ]
    # a generic family resolves to one font only; glyph fallback needs the families named in font.family
    rcParams["font.family"] = ["DejaVu Sans", family, "sans-serif"]
    return family


@lru_cache(maxsize=8)
def cjk_pil_font(size: int):
    """The CJK font as a Pillow ImageFont of `size` pixels."""
    from PIL import ImageFont

    return ImageFont.truetype(str(CJK_FONT), size)


@lru_cache(maxsize=1)
def cjk_codepoints() -> frozenset[int]:
    """The code points the shipped font has glyphs for."""
    from matplotlib.ft2font import FT2Font

    return frozenset(FT2Font(str(CJK_FONT)).get_charmap())


def plot_char(ch: str) -> str:
    """`ch` if the plots can draw it (below the CJK blocks: DejaVu Sans; else the shipped font), else its code."""
    return ch if ord(ch) < 0x2E80 or ord(ch) in cjk_codepoints() else f"U+{ord(ch):04X}"
