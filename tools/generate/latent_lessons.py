"""generate_image's latent lessons: the latent made visible (show_latents) and the hires fix (hires_scale).

The hires fix as Stable Diffusion web UIs do it ("Latent" upscaler): the first pass's final latent, still in the
UNet's scaled latent space, is enlarged with bilinear interpolation, noised back to the level of step
`strength x T` and denoised again for the last `steps x strength` steps with the same prompt (diffusers'
img2img pipeline takes a 4-channel tensor as a latent and skips the VAE encoder). Interpolation alone averages
neighbouring latent pixels, and the decoder turns those averages into soft edges; re-sampling lets the UNet
draw the edges again at the new size.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import StableDiffusionImg2ImgPipeline

from tools.common import Reporter
from tools.generate.schema import ChannelStats


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
