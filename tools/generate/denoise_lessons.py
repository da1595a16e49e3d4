"""generate_image's denoising lessons: the model's guess of the final image along the way (show_steps) and the
img2img strength sweep (strengths).

show_steps hooks the UNet: at the chosen steps the pipeline keeps its prediction of the clean latent, and the
strip shows them decoded (in img2img after the input and the noised start). strengths runs the same seed once
per strength and measures how far each result moved from the input.
"""

from __future__ import annotations

import numpy as np
import torch

from tools.common import InlineImage
from tools.generate import picture
from tools.generate.schema import SavedImage, StrengthPoint


class PredictionRecorder:
    """show_steps: keep the UNet's last input/output to compute its prediction of the clean latent.

    Every diffusers scheduler feeds the UNet the variance-preserving x_t (Euler-type ones scale it first),
    so x0 follows from alphas_cumprod[t] and the prediction type alone, whatever the sampler.
    """

    def __init__(self, pipe, guidance_scale: float):
        self.pipe, self.guidance = pipe, guidance_scale
        self.last = None
        self.first = None  # the first UNet input: the noised start latent (img2img) or the pure noise
        self.handle = pipe.unet.register_forward_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs, output):
        sample = args[0] if args else kwargs["sample"]
        t = args[1] if len(args) > 1 else kwargs["timestep"]
        self.last = (sample.detach(), t, output[0].detach())
        if self.first is None:
            self.first = (
                sample.detach().chunk(2)[1] if self.pipe.do_classifier_free_guidance else sample.detach()
            )

    def alpha_bar(self, t) -> torch.Tensor | None:
        """alpha_bar_t of the scheduler's training schedule (None for a scheduler without one)."""
        alphas = getattr(self.pipe.scheduler, "alphas_cumprod", None)
        if alphas is None:
            return None
        ti = int(round(float(torch.as_tensor(t).flatten()[0])))
        return alphas[min(max(ti, 0), len(alphas) - 1)]

    def noise_level(self, t) -> float | None:
        """sqrt(1 - alpha_bar_t): the share of noise in x_t (0 clean, 1 pure noise)."""
        a = self.alpha_bar(t)
        return None if a is None else float((1 - a).sqrt())

    def x0(self):
        sample, t, out = self.last
        if self.pipe.do_classifier_free_guidance:
            uncond, cond = out.chunk(2)
            out = uncond + self.guidance * (cond - uncond)
            sample = sample.chunk(2)[1]
        a = self.alpha_bar(t)
        if a is None:
            return sample
        a = a.to(sample.device, sample.dtype)
        kind = self.pipe.scheduler.config.prediction_type
        if kind == "v_prediction":
            return a.sqrt() * sample - (1 - a).sqrt() * out
        if kind == "epsilon":
            return (sample - (1 - a).sqrt() * out) / a.sqrt()
        return out

    def close(self):
        self.handle.remove()


# ---- the parts of the result


def steps_strip(args, pipe, cfg, frames, init, recorder, inline) -> tuple[SavedImage | None, list[str]]:
    """show_steps: the recorded predictions (step, label, latent) decoded into one saved strip, and its labels."""
    strip, labels = None, []
    if frames:
        shown = [picture.decode_latents(pipe, x0)[0] for _, _, x0 in frames]
        labels = [label for _, label, _ in frames]
        if init is not None and recorder is not None and recorder.first is not None:
            # the strip starts where img2img starts: the input, then the input noised to the strength's level
            shown = [init, picture.decode_latents(pipe, recorder.first[:1])[0], *shown]
            labels = ["input", f"noised start\n(strength {args.strength:g})", *labels]
        strip_im = picture.strip(shown, labels)
        strip = picture.save(strip_im, cfg)
        inline.append(
            InlineImage(
                png=picture.inline(strip_im),
                caption="prediction of the final image at steps " + ", ".join(str(s) for s, _, _ in frames),
            )
        )
    return strip, labels


def strength_sweep(
    args, cfg, init, swept, pictures, saved, inline
) -> tuple[list[StrengthPoint], SavedImage | None, list[str]]:
    """strengths: one point per (strength, steps run, latent) in `swept`, the strip (input, then one frame per
    strength) and its labels; nothing without init_image."""
    sweep: list[StrengthPoint] = []
    if args.strengths is None or init is None:
        return sweep, None, []
    ref = np.asarray(init, dtype=np.float32)
    for (strength, n, _), im, kept in zip(swept, pictures, saved, strict=True):
        diff = float(np.abs(np.asarray(im, dtype=np.float32) - ref).mean())  # 0-255 scale
        sweep.append(StrengthPoint(strength=strength, steps_run=n, mean_abs_diff=round(diff, 3), image=kept))
    labels = ["input", *(f"strength {p.strength:g}\ndiff {p.mean_abs_diff:.1f}" for p in sweep)]
    strip_im = picture.strip([init, *pictures], labels)
    sweep_strip = picture.save(strip_im, cfg)
    inline.append(
        InlineImage(
            png=picture.inline(strip_im),
            caption="strength sweep (same seed): " + ", ".join(f"{p.strength:g}" for p in sweep),
        )
    )
    return sweep, sweep_strip, labels
