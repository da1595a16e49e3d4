"""generate_image pictures: compact inline copies (tiny ones enlarged) and the show_steps strip."""

from __future__ import annotations

from tools.images import to_inline_png

INLINE_MIN_SIDE = 256  # tiny images are shown enlarged (nearest neighbour) so the pixels stay visible


def inline(im) -> bytes:
    return to_inline_png(im, min_side=INLINE_MIN_SIDE)


def strip(images):
    """The frames side by side, 2 px white between them."""
    from PIL import Image

    w, h = images[0].size
    out = Image.new("RGB", (w * len(images) + 2 * (len(images) - 1), h), (255, 255, 255))
    for k, im in enumerate(images):
        out.paste(im, (k * (w + 2), 0))
    return out
