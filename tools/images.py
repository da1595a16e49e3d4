"""Image inputs (path, data: URI, base64, output resource URI) and compact inline PNGs."""

from __future__ import annotations

import base64
import binascii
import io
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from matplotlib.figure import Figure

from tools.common import InvalidArgument
from tools.config import LabConfig
from tools.paths import OUTPUT_URI_PREFIX, new_output_path, resolve_output_uri, resolve_readable

if TYPE_CHECKING:
    from PIL import Image

INLINE_MAX_SIDE = 1024
INLINE_MAX_BYTES = 600_000
_BASE64_RE = re.compile(r"^[A-Za-z0-9+/=_\-\s]+$")
# What PIL's format plugins raise on damaged data (besides UnidentifiedImageError).
_CORRUPT = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error)
_DATA_URI_RE = re.compile(
    r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w-]+=[\w.+-]+)*)(?P<b64>;base64)?,", re.I
)


@dataclass
class ImageSource:
    """An opened (header read, pixels not yet decoded) image and where it came from."""

    image: Image.Image
    kind: str  # "path" | "data_uri" | "base64" | "resource"
    description: str
    path: Path | None = None


def _open_bytes(data: bytes, argument: str, shown: str):
    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise InvalidArgument(
            argument, shown, "is not an image PIL can read (PNG, JPEG, GIF, BMP, TIFF, WebP...)"
        ) from None
    except Image.DecompressionBombError as exc:
        raise InvalidArgument(argument, shown, f"refused as a decompression bomb: {exc}") from None
    except _CORRUPT as exc:  # a recognised format whose header is cut short or inflates too far (zTXt bombs)
        raise InvalidArgument(argument, shown, f"image header is truncated or corrupt ({exc})") from None


def _decode_base64(payload: str, argument: str, cfg: LabConfig, shown: str) -> bytes:
    limit = cfg.limits.max_base64_bytes
    if len(payload) > limit:
        raise InvalidArgument(
            argument, shown, f"base64 payload is {len(payload)} characters; the limit is {limit}"
        )
    try:
        compact = re.sub(r"\s+", "", payload)
        compact += "=" * (-len(compact) % 4)
        return base64.b64decode(
            compact, altchars=b"-_" if ("-" in compact or "_" in compact) else None, validate=True
        )
    except (binascii.Error, ValueError):
        raise InvalidArgument(argument, shown, "is not valid base64") from None


def looks_like_base64(value: str) -> bool:
    return len(value) >= 256 and _BASE64_RE.match(value[:4096]) is not None and "." not in value[:64]


def open_image_input(value: str, cfg: LabConfig, argument: str = "image") -> ImageSource:
    """Open an image argument without decoding its pixels; refuse it if over the pixel cap.

    Accepts a file path under an allowed folder, a `data:image/...;base64,` URI, bare base64, or an
    `mllab://outputs/...` URI of a file this server made.
    """
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgument(
            argument, value, "give a file path, a data: URI, base64 text or an mllab:// URI"
        )
    value = value.strip()
    shown = value if len(value) <= 80 else value[:60] + f"... ({len(value)} chars)"
    path: Path | None = None
    if value[:5].lower() == "data:":
        m = _DATA_URI_RE.match(value[:256])
        if not m or not m.group("b64"):
            raise InvalidArgument(argument, shown, "a data: URI must look like data:image/png;base64,<data>")
        if m.group("mime") and not m.group("mime").lower().startswith("image/"):
            raise InvalidArgument(
                argument, shown, f"data: URI has type {m.group('mime')}; only image/* is allowed"
            )
        im = _open_bytes(_decode_base64(value[m.end() :], argument, cfg, shown), argument, shown)
        kind, desc = "data_uri", "data: URI"
    elif value.startswith(OUTPUT_URI_PREFIX):
        path = resolve_output_uri(value, cfg, argument)
        im, kind, desc = _open_path(path, argument, shown), "resource", value
    elif looks_like_base64(value) and not Path(value[:4096]).suffix:
        im = _open_bytes(_decode_base64(value, argument, cfg, shown), argument, shown)
        kind, desc = "base64", "base64 text"
    else:
        path = resolve_readable(value, cfg, argument)
        im, kind, desc = _open_path(path, argument, shown), "path", str(path)
    check_pixels(im, cfg, argument, shown)
    return ImageSource(image=im, kind=kind, description=desc, path=path)


def _open_path(path: Path, argument: str, shown: str):
    return _open_bytes(path.read_bytes(), argument, shown)


def check_pixels(im, cfg: LabConfig, argument: str, shown: str) -> None:
    w, h = im.size
    if w <= 0 or h <= 0:
        raise InvalidArgument(argument, shown, f"image has an empty size {w}x{h}")
    cap = cfg.limits.max_pixels
    if w * h > cap:
        raise InvalidArgument(
            argument,
            shown,
            f"image is {w}x{h} = {w * h} pixels; the limit is {cap} (refused before decoding)",
        )


def decode(im, argument: str = "image", shown: str = "image"):
    """Decode the pixels, turning truncated or corrupt data into a clear InvalidArgument."""
    from PIL import Image

    try:
        im.load()
    except Image.DecompressionBombError as exc:
        raise InvalidArgument(argument, shown, f"refused as a decompression bomb: {exc}") from None
    except _CORRUPT as exc:
        raise InvalidArgument(argument, shown, f"image data is truncated or corrupt ({exc})") from None
    return im


def to_inline_png(
    im, max_side: int = INLINE_MAX_SIDE, max_bytes: int = INLINE_MAX_BYTES, min_side: int = 0
) -> bytes:
    """The one inline-PNG helper: a compact PNG for inline display from a PIL image or encoded PNG bytes.

    PNG bytes already within the limits come back as they are. Longest side <= max_side and size <= max_bytes
    (downscaled until it fits); a picture smaller than `min_side` is enlarged (nearest neighbour) so the
    pixels stay visible; enlarged flat pictures compress well without `optimize`, which costs ~35 ms alone.
    """
    from PIL import Image

    if isinstance(im, bytes):
        png = im
        im = Image.open(io.BytesIO(png))
        if min_side <= max(im.size) <= max_side and len(png) <= max_bytes:
            return png
    k = -(-min_side // max(im.size)) if min_side else 1
    if k > 1 and max(im.size) * k <= max_side:
        buf = io.BytesIO()
        im.resize((im.width * k, im.height * k), Image.Resampling.NEAREST).save(
            buf, format="PNG", compress_level=6
        )
        if len(buf.getvalue()) <= max_bytes:
            return buf.getvalue()
    if im.mode not in ("RGB", "RGBA", "L", "LA"):
        im = im.convert("RGBA" if "A" in im.getbands() else "RGB")
    scale = min(1.0, max_side / max(im.size))
    while True:
        size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
        small = im if size == im.size else im.resize(size, Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        small.save(buf, format="PNG", optimize=True)
        data = buf.getvalue()
        if len(data) <= max_bytes or max(size) <= 64:
            return data
        scale *= 0.75


def save_png(im, cfg: LabConfig, category: str = "images") -> Path:
    """Save the full-size image under the output folder (generated name) and return its path."""
    path = new_output_path(cfg, category, ".png")
    im.save(path, format="PNG")
    return path


def figure_to_png(fig, dpi: int = 100, tight: bool = True) -> bytes:
    """Render a matplotlib figure to PNG bytes (Agg, no screen, no pyplot state).

    tight=True crops to the drawn content, which costs a second full draw; a figure with
    layout="constrained" already fills its canvas and can pass tight=False (the align pictures: 1.2 s -> 0.6 s).
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight" if tight else None)
    return buf.getvalue()


def new_figure(nrows: int = 1, ncols: int = 1, **kwargs):
    """A matplotlib Figure and its axes, outside pyplot.

    Tool calls run concurrently in worker threads and pyplot's global figure registry is not
    thread-safe; a bare `Figure` is, and is freed like any object. Same arguments as plt.subplots.
    """

    fig_kw = {k: kwargs.pop(k) for k in ("figsize", "dpi", "layout", "facecolor") if k in kwargs}
    fig = Figure(**fig_kw)
    axes = fig.subplots(nrows, ncols, **kwargs)
    return fig, axes
