"""generate_image's latent lessons: the latent made visible (show_latents) and the hires fix (hires_scale).

The hires fix as Stable Diffusion web UIs do it ("Latent" upscaler): the first pass's final latent, still in the
UNet's scaled latent space, is enlarged with bilinear interpolation, noised back to the level of step
`strength x T` and denoised again for the last `steps x strength` steps with the same prompt (diffusers'
img2img pipeline takes a 4-channel tensor as a latent and skips the VAE encoder). Interpolation alone averages
neighbouring latent pixels, and the decoder turns those averages into soft edges; re-sampling lets the UNet
draw the edges again at the new size.

This module also checks hires_scale and builds both lessons' parts of the result (HiresInfo, LatentView).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import StableDiffusionImg2ImgPipeline
from PIL import Image

from tools import diffusion_models as dm
from tools.common import InlineImage, InvalidArgument, Reporter
from tools.config import LabConfig
from tools.generate import picture
from tools.generate.schema import ChannelStats, GenerateInput, HiresInfo, LatentView, Sharpness


def check_hires(args: GenerateInput, info: dm.ModelInfo, width: int, height: int, cfg: LabConfig):
    """hires_scale: the upscaled (width, height), checked against the model's grid and the size limits."""
    if args.hires_scale is None:
        return None
    m, top, cap = info.size_multiple, info.max_side, cfg.limits.max_generate_pixels
    size = (round(width * args.hires_scale), round(height * args.hires_scale))
    fits = [
        k / 4
        for k in range(5, 17)
        if all(round(v * k / 4) % m == 0 and round(v * k / 4) <= top for v in (width, height))
        and round(width * k / 4) * round(height * k / 4) <= cap
    ]
    if any(v % m or v > top for v in size) or size[0] * size[1] > cap or info.latent_channels != 4:
        raise InvalidArgument(
            "hires_scale",
            args.hires_scale,
            f"{width}x{height} upscaled to {size[0]}x{size[1]}, but model {info.name!r} needs multiples of {m} "
            f"up to {top} a side and at most {cap} pixels (max_generate_pixels)"
            + (f"; scales that fit: {', '.join(f'{k:g}' for k in fits)}" if fits else "; no scale fits")
            + ("" if info.latent_channels == 4 else "; and a 4-channel latent"),
        )
    return size


@dataclass
class HiresPass:
    upscaled: torch.Tensor  # (B, C, h*s, w*s) bilinear upscale of the first pass's latent
    latents: torch.Tensor  # (B, C, h*s, w*s) after re-sampling (== upscaled when strength is 0)
    steps_run: int
    seconds: float


def upscale_latent(latents: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, C, h, w) -> (B, C, height, width) by bilinear interpolation (the web UIs' default 'Latent' mode)."""
    return F.interpolate(latents, size=(height, width), mode="bilinear", align_corners=False)


def hires_fix(
    pipe,
    latents: torch.Tensor,  # (B, C, h, w) the first pass's final latent, scaled as the UNet sees it
    size: tuple[int, int],  # (height, width) of the upscaled latent
    strength: float,
    *,
    prompt_embeds: torch.Tensor,
    negative_embeds: torch.Tensor | None,
    steps: int,
    guidance: float,
    seed: int,
    reporter: Reporter,
    cross_attention_kwargs: dict | None = None,  # {"scale": lora_scale} when a LoRA is loaded
) -> HiresPass:
    t0 = time.perf_counter()
    upscaled = upscale_latent(latents, *size)
    n = int(steps * strength)
    if n == 0:
        return HiresPass(upscaled, upscaled, 0, time.perf_counter() - t0)
    runner = pipe
    if not isinstance(pipe, StableDiffusionImg2ImgPipeline):  # same components, same scheduler
        runner = StableDiffusionImg2ImgPipeline(**pipe.components)
        runner.set_progress_bar_config(disable=True)  # type: ignore[attr-defined]  # DiffusionPipeline method

    def on_step_end(p, i, t, kwargs):
        reporter.progress(i + 1, n, f"hires fix: re-sampling step {i + 1}/{n}")
        reporter.check_cancelled()
        return kwargs

    with torch.no_grad():
        out = runner(
            prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_embeds,
            image=upscaled,  # 4 channels: taken as a latent, not encoded
            strength=strength,
            num_inference_steps=steps,
            guidance_scale=guidance,
            num_images_per_prompt=1,
            output_type="latent",
            generator=torch.Generator(device="cpu").manual_seed(seed),
            callback_on_step_end=on_step_end,
            cross_attention_kwargs=cross_attention_kwargs,
            return_dict=False,
        )[0]
    return HiresPass(upscaled, out, n, time.perf_counter() - t0)


def laplacian_variance(im) -> float:
    """Sharpness of a picture: variance of the 4-neighbour Laplacian of its grey image (0-255), interior only."""
    g = np.asarray(im.convert("L"), dtype=np.float64)  # (H, W)
    lap = g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:] - 4 * g[1:-1, 1:-1]  # (H-2, W-2)
    return float(lap.var())


def channel_stats(latent: torch.Tensor) -> list[ChannelStats]:
    """Per-channel statistics of one latent (C, h, w)."""
    x = latent.detach().float().cpu()
    return [
        ChannelStats(
            channel=c,
            mean=round(float(x[c].mean()), 4),
            std=round(float(x[c].std()), 4),
            min=round(float(x[c].min()), 4),
            max=round(float(x[c].max()), 4),
        )
        for c in range(x.shape[0])
    ]


# ---- the parts of the result


def hires_info(args, pipe, cfg, hires_pass, first_latents, pictures, inline) -> HiresInfo | None:
    """hires_scale: decode the first pass and the plain upscale, save them and the side-by-side strip."""
    if hires_pass is None:
        return None
    first = picture.decode_latents(pipe, first_latents[:1])[0]
    plain = (
        pictures[0] if hires_pass.steps_run == 0 else picture.decode_latents(pipe, hires_pass.upscaled[:1])[0]
    )
    enlarged = first.resize(pictures[0].size, Image.Resampling.NEAREST)
    sharp = Sharpness(
        plain_upscale=round(laplacian_variance(plain), 2),
        resampled=round(laplacian_variance(pictures[0]), 2),
    )
    labels = [
        f"first pass {first.width}x{first.height}\n(pixels enlarged)",
        f"latent upscale x{args.hires_scale:g}\nsharpness {sharp.plain_upscale:.0f}",
        f"re-sampled, strength {args.hires_strength:g}\nsharpness {sharp.resampled:.0f}",
    ]
    strip_im = picture.strip([enlarged, plain, pictures[0]], labels)
    inline.append(
        InlineImage(
            png=picture.inline(strip_im),
            caption="hires fix: first pass, plain latent upscale, re-sampled",
        )
    )
    return HiresInfo(
        scale=args.hires_scale,
        strength=args.hires_strength,
        steps_run=hires_pass.steps_run,
        first_pass_latent=list(first_latents.shape),
        upscaled_latent=list(hires_pass.upscaled.shape),
        first_pass=picture.save(first, cfg),
        plain_upscale=picture.save(plain, cfg),
        strip=picture.save(strip_im, cfg),
        sharpness=sharp,
        seconds=round(hires_pass.seconds, 4),
    )


def latent_view(args, pipe, cfg, info, latents, pictures, inline) -> LatentView | None:
    """show_latents: the first image's final latent (C, h, w) as heatmaps on one shared scale, with stats."""
    if not args.show_latents:
        return None
    lat = latents[0].detach().float().cpu()  # (C, h, w)
    limit = max(float(lat.abs().max()), 1e-6)
    stats = channel_stats(lat)
    shape = list(lat.shape)
    labels = [f"image {pictures[0].width}x{pictures[0].height}\nlatent {'x'.join(map(str, shape))}"] + [
        f"channel {c.channel}\nmean {c.mean:+.2f} std {c.std:.2f}" for c in stats
    ]
    im = picture.latent_channels(pictures[0], lat.numpy(), limit, labels)
    inline.append(
        InlineImage(
            png=picture.inline(im),
            caption=f"latent {'x'.join(map(str, shape))} by channel (blue -{limit:.2f}, white 0, red +{limit:.2f})",
        )
    )
    return LatentView(
        shape=shape,
        downscale=info.latent_downscale,
        channels=stats,
        colour_limit=round(limit, 4),
        picture=picture.save(im, cfg),
    )


def hires_summary(hires: HiresInfo) -> str:
    sh = hires.sharpness
    return (
        f"Hires fix: latent {hires.first_pass_latent[2:]} -> {hires.upscaled_latent[2:]} (x{hires.scale:g}), "
        f"re-sampled {hires.steps_run} steps at strength {hires.strength:g}; sharpness (Laplacian variance) "
        f"plain latent upscale {sh.plain_upscale:.0f}, re-sampled "
        f"{sh.resampled:.0f}. Strip: {hires.strip.uri}"
    )


def latent_summary(view: LatentView) -> str:
    return (
        f"Latent of image #0: {'x'.join(map(str, view.shape))} (image / {view.downscale} a "
        f"side); channel means "
        + ", ".join(f"{c.mean:+.2f}" for c in view.channels)
        + f"; heatmaps: {view.picture.uri}"
    )
