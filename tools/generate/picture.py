"""generate_image pictures: latents decoded to pixels, saved PNGs, compact inline copies (tiny ones enlarged) and
labelled strips (show_steps, strengths, hires_scale, show_latents)."""

from __future__ import annotations

from tools.config import LabConfig
from tools.generate.schema import SavedImage
from tools.images import to_inline_png
from tools.paths import new_output_path, output_uri

INLINE_MIN_SIDE = 256  # tiny images are shown enlarged (nearest neighbour) so the pixels stay visible
FRAME_MIN_SIDE = 128  # strip frames are enlarged to this so a two-line label fits under each
LABEL_FONT_PX = 11


def decode_latents(pipe, latents):
    """VAE decoder; the latent is unscaled first (the VAE's scaling_factor), then mapped to [0, 1] pixels."""
    import torch

    with torch.no_grad():
        image = pipe.vae.decode(latents / pipe.vae.config.scaling_factor, return_dict=False)[0]
    return pipe.image_processor.postprocess(image, output_type="pil", do_denormalize=[True] * image.shape[0])


def save(im, cfg: LabConfig) -> SavedImage:
    path = new_output_path(cfg, "generated", ".png")
    im.save(path, format="PNG")
    return SavedImage(path=str(path), uri=output_uri(cfg, path), width=im.width, height=im.height)


def inline(im) -> bytes:
    return to_inline_png(im, min_side=INLINE_MIN_SIDE)


def strip(images, labels: list[str] | None = None):
    """The frames side by side, 2 px white between them; with labels, each frame enlarged (nearest neighbour)
    to at least FRAME_MIN_SIDE and its label (lines split at '\\n') written in a white band under it."""
    from PIL import Image, ImageDraw, ImageFont

    w, h = images[0].size
    band = 0
    if labels is not None:
        scale = max(1, -(-FRAME_MIN_SIDE // min(w, h)))  # ceil
        images = [im.resize((w * scale, h * scale), Image.Resampling.NEAREST) for im in images]
        w, h = w * scale, h * scale
        lines = max(label.count("\n") + 1 for label in labels)
        band = lines * (LABEL_FONT_PX + 3) + 4
    out = Image.new("RGB", (w * len(images) + 2 * (len(images) - 1), h + band), (255, 255, 255))
    draw = ImageDraw.Draw(out)
    font = ImageFont.load_default(size=LABEL_FONT_PX)
    for k, im in enumerate(images):
        out.paste(im, (k * (w + 2), 0))
        if labels is not None:
            draw.multiline_text((k * (w + 2) + 2, h + 2), labels[k], fill=(0, 0, 0), font=font, spacing=3)
    return out


HEATMAP_COLOURS = "RdBu_r"  # blue below 0, white at 0, red above: a latent channel is signed


def heatmap(channel, limit: float, size: tuple[int, int]):
    """One latent channel (h, w) as an RGB picture of `size` (width, height): colours from matplotlib's
    HEATMAP_COLOURS on the shared scale [-limit, limit], each latent pixel a block (nearest neighbour)."""
    import matplotlib
    import numpy as np
    from PIL import Image

    x = np.clip((np.asarray(channel, dtype=np.float64) / limit + 1) / 2, 0, 1)  # (h, w) in [0, 1]
    rgb = matplotlib.colormaps[HEATMAP_COLOURS](x)[..., :3]  # (h, w, 3) in [0, 1]
    return Image.fromarray((rgb * 255).round().astype(np.uint8)).resize(size, Image.Resampling.NEAREST)


def latent_channels(image, latent, limit: float, labels: list[str]):
    """The decoded image, then one heatmap per channel of its latent (C, h, w), labelled, in one strip."""
    panels = [heatmap(latent[c], limit, image.size) for c in range(len(latent))]
    return strip([image, *panels], labels)
