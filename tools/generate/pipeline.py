"""generate_image: text-to-image and image-to-image with a real latent diffusion pipeline (diffusers), offline.

One path for every model (the built-in one and any Stable Diffusion folder), read as numbered steps in `run`:
  1. check every argument against the model and the limits, before loading anything heavy;
  2. load (or reuse) the cached pipeline; pick the scheduler;
  3. tokenize (ids, truncation) and encode the prompt with the text encoder (timed: encode);
  4. denoise in latent space with the diffusers pipeline itself, output_type="latent" (timed: denoise); each
     step reports progress, checks for cancellation and, with show_steps, records the model's current
     prediction of the clean latent;
  5. decode the latents with the VAE (timed: decode), save full-size PNGs, return compact inline copies.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import torch
from diffusers import StableDiffusionImg2ImgPipeline

from tools import diffusion_models as dm
from tools.common import InlineImage, InvalidArgument, NullReporter, Reporter, ToolOutput
from tools.config import LabConfig
from tools.generate import latent_lessons, picture
from tools.generate.schema import (
    BUILTIN_GUIDANCE,
    SD_GUIDANCE,
    SHOW_FRAMES,
    GenerateInput,
    GenerateResult,
    HiresInfo,
    LatentView,
    SavedImage,
    Shapes,
    Sharpness,
    StrengthPoint,
    Timings,
    TokenInfo,
    UnknownWord,
)
from tools.images import decode, open_image_input
from tools.paths import new_output_path, output_uri
from tools.teach_image import use as teach_use

# ------------------------------------------------------------------ step 1: checks


def check_arguments(args: GenerateInput, cfg: LabConfig) -> tuple[dm.ModelInfo, int, int]:
    lim = cfg.limits
    if not args.prompt.strip():
        # an empty prompt would silently give the model's unconditional guess, which looks like a failure
        raise InvalidArgument(
            "prompt",
            args.prompt,
            "say what to draw, e.g. 'a small red circle in the top left on a blue background'; an empty prompt "
            "is not run (the model would draw its unconditional average, not your picture)",
        )
    info = dm.find_model(cfg, args.model)
    if args.steps > lim.max_steps:
        raise InvalidArgument("steps", args.steps, f"at most {lim.max_steps} (server limit max_steps)")
    if args.num_images > lim.max_images:
        raise InvalidArgument(
            "num_images", args.num_images, f"at most {lim.max_images} (server limit max_images)"
        )
    width, height = args.width or info.native_size, args.height or info.native_size
    for name, value in (("width", width), ("height", height)):
        if value % info.size_multiple or value > info.max_side:
            raise InvalidArgument(
                name,
                value,
                f"model {info.name!r} needs a multiple of {info.size_multiple} up to {info.max_side} "
                f"(native {info.native_size})",
            )
    if width * height > lim.max_generate_pixels:
        raise InvalidArgument(
            "width",
            width,
            f"width x height = {width * height} pixels; the limit is "
            f"{lim.max_generate_pixels} (server limit max_generate_pixels)",
        )
    if args.init_image is None:
        if "strength" in args.model_fields_set:
            raise InvalidArgument(
                "strength", args.strength, "only used with init_image; leave it out otherwise"
            )
    elif args.strengths is None and int(args.steps * args.strength) < 1:
        raise InvalidArgument(
            "strength",
            args.strength,
            f"with steps={args.steps}, strength must be at least {1 / args.steps:.3g} so one step is denoised",
        )
    return info, width, height


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


# ------------------------------------------------------------------ helpers


def make_scheduler(name: str, base_config):
    """A fresh scheduler per call (schedulers keep state), built from the model's own scheduler config."""
    import diffusers

    if name == "default":
        return None
    cls = getattr(diffusers, dm.SCHEDULERS[name])
    if name == "pndm":  # Stable Diffusion runs PNDM without its Runge-Kutta warm-up steps
        return cls.from_config(base_config, skip_prk_steps=True)
    return cls.from_config(base_config)


def token_info(tokenizer, text: str) -> TokenInfo:
    limit = tokenizer.model_max_length
    full = tokenizer(text, truncation=False, add_special_tokens=True).input_ids
    kept = tokenizer(text, truncation=True, max_length=limit).input_ids
    truncated = len(full) > limit
    dropped = tokenizer.decode(full[limit - 1 : -1]) if truncated else ""
    return TokenInfo(
        ids=kept,
        tokens=tokenizer.convert_ids_to_tokens(kept),
        count=len(kept),
        max_length=limit,
        truncated=truncated,
        dropped_text=dropped,
    )


def _save(im, cfg: LabConfig) -> SavedImage:
    path = new_output_path(cfg, "generated", ".png")
    im.save(path, format="PNG")
    return SavedImage(path=str(path), uri=output_uri(cfg, path), width=im.width, height=im.height)


@contextmanager
def _locked(lock, reporter: Reporter, poll_s: float = 0.05):
    """Hold `lock`; while another call holds it, wait in short slices that check for cancellation (a call
    queued behind a long one must still stop within a second when cancelled)."""
    while not lock.acquire(timeout=poll_s):
        reporter.check_cancelled()
    try:
        reporter.check_cancelled()
        yield
    finally:
        lock.release()


@contextmanager
def _cancellable(unet, reporter: Reporter):
    """Check for cancellation before the UNet and before each of its blocks, not only between denoising steps:
    one step of the built-in model takes 0.5-1.5 s on 2 busy cores, a block a fraction of that."""
    blocks = [unet, *getattr(unet, "down_blocks", []), getattr(unet, "mid_block", None)]
    blocks += list(getattr(unet, "up_blocks", []))
    handles = [
        b.register_forward_pre_hook(lambda module, args: reporter.check_cancelled())
        for b in blocks
        if b is not None
    ]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


class _PredictionRecorder:
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

    def noise_level(self, t) -> float | None:
        """sqrt(1 - alpha_bar_t): the share of noise in x_t (0 clean, 1 pure noise)."""
        alphas = getattr(self.pipe.scheduler, "alphas_cumprod", None)
        if alphas is None:
            return None
        ti = int(round(float(torch.as_tensor(t).flatten()[0])))
        return float((1 - alphas[min(max(ti, 0), len(alphas) - 1)]).sqrt())

    def x0(self):
        sample, t, out = self.last
        if self.pipe.do_classifier_free_guidance:
            uncond, cond = out.chunk(2)
            out = uncond + self.guidance * (cond - uncond)
            sample = sample.chunk(2)[1]
        alphas = (
            self.pipe.scheduler.alphas_cumprod if hasattr(self.pipe.scheduler, "alphas_cumprod") else None
        )
        if alphas is None:
            return sample
        ti = int(round(float(torch.as_tensor(t).flatten()[0])))
        a = alphas[min(max(ti, 0), len(alphas) - 1)].to(sample.device, sample.dtype)
        kind = self.pipe.scheduler.config.prediction_type
        if kind == "v_prediction":
            return a.sqrt() * sample - (1 - a).sqrt() * out
        if kind == "epsilon":
            return (sample - (1 - a).sqrt() * out) / a.sqrt()
        return out

    def close(self):
        self.handle.remove()


def decode_latents(pipe, latents):
    """VAE decoder; the latent is unscaled first (the VAE's scaling_factor), then mapped to [0, 1] pixels."""

    with torch.no_grad():
        image = pipe.vae.decode(latents / pipe.vae.config.scaling_factor, return_dict=False)[0]
    return pipe.image_processor.postprocess(image, output_type="pil", do_denormalize=[True] * image.shape[0])


# ------------------------------------------------------------------ the tool


@contextmanager
def _runner(pipe, scheduler_name: str, img2img: bool):
    """The pipeline to call: the cached one with the chosen scheduler, or an img2img view of its components.

    The cached pipeline's scheduler is put back afterwards, whatever happens.
    """
    base_scheduler = pipe.scheduler
    scheduler = make_scheduler(scheduler_name, base_scheduler.config)
    try:
        if img2img:
            runner = StableDiffusionImg2ImgPipeline(
                **{**pipe.components, "scheduler": scheduler or base_scheduler}
            )
            runner.set_progress_bar_config(disable=True)  # type: ignore[attr-defined]  # DiffusionPipeline method
            yield runner
        else:
            if scheduler is not None:
                pipe.scheduler = scheduler
            yield pipe
    finally:
        pipe.scheduler = base_scheduler


def generate(args: GenerateInput, cfg: LabConfig, reporter: Reporter | None = None) -> ToolOutput:
    reporter = reporter or NullReporter()
    t_start = time.perf_counter()
    # 1. checks (no torch yet); the init image is opened (header only) and refused early if unusable
    info, width, height = check_arguments(args, cfg)
    hires_size = check_hires(args, info, width, height, cfg)
    adapter = teach_use.check(args, cfg, info.path)  # generate_image(lora=...): a taught word, or None
    init = None
    if args.init_image is not None:
        src = open_image_input(args.init_image, cfg, "init_image")
        init = decode(src.image, "init_image", src.description).convert("RGB").resize((width, height))
    reporter.check_cancelled()

    import numpy as np

    # 2. pipeline (cached) and scheduler
    t0 = time.perf_counter()
    cached_pipe, cached = dm.load_pipeline(info)
    if adapter is not None:
        cached_pipe = teach_use.pipeline(cached_pipe, adapter)
    load_s = 0.0 if cached else time.perf_counter() - t0
    device = cached_pipe.device
    with _locked(dm.GENERATE_LOCK, reporter), _runner(cached_pipe, args.scheduler, init is not None) as pipe:
        # 3. tokens and text embeddings
        t0 = time.perf_counter()
        tokens = token_info(pipe.tokenizer, args.prompt)
        negative = token_info(pipe.tokenizer, args.negative_prompt) if args.negative_prompt else None
        unknown = [
            UnknownWord(
                word=w,
                tokens=pipe.tokenizer.tokenize(w),
                close_words=dm.close_words(w, info.vocabulary or []),
            )
            for w in dm.unknown_words(
                args.prompt, [*(info.vocabulary or []), *([adapter.word] if adapter else [])]
            )
            if info.kind == "builtin"
        ]
        guidance = args.guidance_scale
        if guidance is None:
            guidance = BUILTIN_GUIDANCE if info.kind == "builtin" else SD_GUIDANCE
        cfg_on = guidance > 1.0
        with torch.no_grad():
            prompt_embeds, negative_embeds = pipe.encode_prompt(
                args.prompt, device, args.num_images, cfg_on, args.negative_prompt or None
            )
        encode_s = time.perf_counter() - t0
        text_shape = list(prompt_embeds.shape)
        if cfg_on:
            text_shape[0] *= 2

        # 4. denoising loop: progress, cancellation and (show_steps) predictions at every step
        steps_run = int(args.steps * args.strength) if init is not None else args.steps
        shown_at = sorted({round(i * (steps_run - 1) / (SHOW_FRAMES - 1)) for i in range(SHOW_FRAMES)})
        frames: list = []  # (step, label, predicted clean latent)
        recorder = _PredictionRecorder(pipe, guidance) if args.show_steps else None
        strengths = args.strengths or [args.strength]

        def on_step_end(p, i, t, kwargs):
            reporter.progress(i + 1, steps_run, f"denoising step {i + 1}/{steps_run}")
            if recorder is not None and i in shown_at and recorder.last is not None:
                tv = int(round(float(torch.as_tensor(t).flatten()[0])))
                level = recorder.noise_level(t)
                label = f"step {i + 1}/{steps_run}\nt={tv}" + (
                    f", noise {level:.2f}" if level is not None else ""
                )
                frames.append((i + 1, label, recorder.x0()[:1]))
            reporter.check_cancelled()
            return kwargs

        call = dict(
            prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_embeds,
            num_inference_steps=args.steps,
            guidance_scale=guidance,
            num_images_per_prompt=1,  # the embeddings are already repeated per image
            output_type="latent",
            callback_on_step_end=on_step_end,
        )
        if adapter is not None:
            call.update(cross_attention_kwargs={"scale": args.lora_scale})
        if init is None:
            call.update(width=width, height=height)
        t0 = time.perf_counter()
        swept = []  # strengths: (strength, steps run, latent) per strength, the same seed each time
        try:
            with torch.no_grad(), _cancellable(pipe.unet, reporter):
                for strength in strengths:
                    if init is not None:
                        call.update(image=init, strength=strength)
                        steps_run = int(args.steps * strength)
                    call["generator"] = torch.Generator(device="cpu").manual_seed(args.seed)
                    latents = pipe(**call, return_dict=False)[0]
                    swept.append((strength, steps_run, latents[:1]))
        finally:
            if recorder is not None:
                recorder.close()
        denoise_s = time.perf_counter() - t0

        # 4b. hires fix: upscale the final latent, then re-sample it (img2img from the latent) at hires_strength
        hires_pass, first_latents = None, latents
        if hires_size is not None:
            f = info.latent_downscale
            with _cancellable(pipe.unet, reporter):
                hires_pass = latent_lessons.hires_fix(
                    pipe,
                    latents,
                    (hires_size[1] // f, hires_size[0] // f),
                    args.hires_strength,
                    prompt_embeds=prompt_embeds,
                    negative_embeds=negative_embeds,
                    steps=args.steps,
                    guidance=guidance,
                    seed=args.seed,
                    reporter=reporter,
                    cross_attention_kwargs=call.get("cross_attention_kwargs"),
                )
            latents = hires_pass.latents
            width, height = hires_size

        # 5. decode, save, inline
        t0 = time.perf_counter()
        if args.strengths is None:
            pictures = decode_latents(pipe, latents)
        else:  # one picture per strength, in the order given
            pictures = [decode_latents(pipe, lat)[0] for _, _, lat in swept]
        decode_s = time.perf_counter() - t0
        saved = [_save(im, cfg) for im in pictures]
        inline = [
            InlineImage(
                png=picture.inline(im), caption=f"{args.model}: {args.prompt!r} (seed {args.seed}, #{k})"
            )
            for k, im in enumerate(pictures)
        ]
        strip, labels = None, []
        if frames:
            shown = [decode_latents(pipe, x0)[0] for _, _, x0 in frames]
            labels = [label for _, label, _ in frames]
            if init is not None and recorder is not None and recorder.first is not None:
                # the strip starts where img2img starts: the input, then the input noised to the strength's level
                shown = [init, decode_latents(pipe, recorder.first[:1])[0], *shown]
                labels = ["input", f"noised start\n(strength {args.strength:g})", *labels]
            strip_im = picture.strip(shown, labels)
            strip = _save(strip_im, cfg)
            inline.append(
                InlineImage(
                    png=picture.inline(strip_im),
                    caption="prediction of the final image at steps "
                    + ", ".join(str(s) for s, _, _ in frames),
                )
            )
        hires = _hires_info(args, pipe, cfg, hires_pass, first_latents, pictures, inline)
        latent_view = _latent_view(args, pipe, cfg, info, latents, pictures, inline)
        sweep, sweep_strip = [], None
        if args.strengths is not None and init is not None:
            ref = np.asarray(init, dtype=np.float32)
            for (strength, n, _), im, kept in zip(swept, pictures, saved, strict=True):
                diff = float(np.abs(np.asarray(im, dtype=np.float32) - ref).mean())  # 0-255 scale
                sweep.append(
                    StrengthPoint(strength=strength, steps_run=n, mean_abs_diff=round(diff, 3), image=kept)
                )
            labels = ["input", *(f"strength {p.strength:g}\ndiff {p.mean_abs_diff:.1f}" for p in sweep)]
            strip_im = picture.strip([init, *pictures], labels)
            sweep_strip = _save(strip_im, cfg)
            inline.append(
                InlineImage(
                    png=picture.inline(strip_im),
                    caption="strength sweep (same seed): " + ", ".join(f"{p.strength:g}" for p in sweep),
                )
            )
        result = GenerateResult(
            model=info.name,
            model_path=info.path,
            device=str(device.type),
            dtype=str(pipe.unet.dtype).replace("torch.", ""),
            mode="img2img" if init is not None else "text2img",
            prompt=args.prompt,
            negative_prompt=args.negative_prompt,
            seed=args.seed,
            steps=args.steps,
            steps_run=steps_run,
            scheduler=type(pipe.scheduler).__name__,
            guidance_scale=guidance,
            strength=args.strength if init is not None and args.strengths is None else None,
            width=width,
            height=height,
            images=saved,
            tokens=tokens,
            negative_tokens=negative,
            shapes=Shapes(
                text_embedding=text_shape,
                latent=list(latents.shape),
                image=[len(pictures), 3, pictures[0].height, pictures[0].width],
            ),
            timings=Timings(
                load_s=round(load_s, 4),
                encode_s=round(encode_s, 4),
                denoise_s=round(denoise_s, 4),
                decode_s=round(decode_s, 4),
                total_s=round(time.perf_counter() - t_start, 4),
            ),
            pipeline_cached=cached,
            steps_shown=[s for s, _, _ in frames],
            steps_strip=strip,
            frame_labels=labels,
            sweep=sweep,
            sweep_strip=sweep_strip,
            unknown_words=unknown,
            latent=latent_view,
            hires=hires,
        )
        summary = (
            f"{result.mode} with {info.name!r}: {len(saved)} image(s) {width}x{height}, {steps_run} {result.scheduler} "
            f"steps, guidance {guidance}, seed {args.seed}; {result.timings.total_s:.2f} s "
            f"(encode {encode_s:.3f}, denoise {denoise_s:.3f}, decode {decode_s:.3f}). Saved: "
            + ", ".join(s.uri for s in saved)
            + (" (prompt truncated to the tokenizer limit)" if tokens.truncated else "")
        )
        if unknown:
            said = ", ".join(
                f"'{u.word}' (tokens {' '.join(u.tokens)}"
                + ("; close to " + " or ".join(f"'{c}'" for c in u.close_words) if u.close_words else "")
                + ")"
                for u in unknown
            )
            summary += (
                f"\nThe built-in model never saw these prompt words in training, so the picture likely ignores them: "
                f"{said}. Rephrase with its vocabulary (list_models)."
            )
        if hires is not None:
            sh = hires.sharpness
            summary += (
                f"\nHires fix: latent {hires.first_pass_latent[2:]} -> {hires.upscaled_latent[2:]} (x{hires.scale:g}), "
                f"re-sampled {hires.steps_run} steps at strength {hires.strength:g}; sharpness (Laplacian variance) "
                f"plain latent upscale {sh.plain_upscale:.0f}, re-sampled "
                f"{sh.resampled:.0f}. Strip: {hires.strip.uri}"
            )
        if latent_view is not None:
            summary += (
                f"\nLatent of image #0: {'x'.join(map(str, latent_view.shape))} (image / {latent_view.downscale} a "
                f"side); channel means "
                + ", ".join(f"{c.mean:+.2f}" for c in latent_view.channels)
                + f"; heatmaps: {latent_view.picture.uri}"
            )
        return ToolOutput(result=result, images=inline, summary=summary)


def _hires_info(args, pipe, cfg, hires_pass, first_latents, pictures, inline) -> HiresInfo | None:
    """hires_scale: decode the first pass and the plain upscale, save them and the side-by-side strip."""
    if hires_pass is None:
        return None
    first = decode_latents(pipe, first_latents[:1])[0]
    plain = pictures[0] if hires_pass.steps_run == 0 else decode_latents(pipe, hires_pass.upscaled[:1])[0]
    from PIL import Image

    enlarged = first.resize(pictures[0].size, Image.Resampling.NEAREST)
    sharp = Sharpness(
        plain_upscale=round(latent_lessons.laplacian_variance(plain), 2),
        resampled=round(latent_lessons.laplacian_variance(pictures[0]), 2),
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
        first_pass=_save(first, cfg),
        plain_upscale=_save(plain, cfg),
        strip=_save(strip_im, cfg),
        sharpness=sharp,
        seconds=round(hires_pass.seconds, 4),
    )


def _latent_view(args, pipe, cfg, info, latents, pictures, inline) -> LatentView | None:
    """show_latents: the first image's final latent (C, h, w) as heatmaps on one shared scale, with stats."""
    if not args.show_latents:
        return None
    lat = latents[0].detach().float().cpu()  # (C, h, w)
    limit = max(float(lat.abs().max()), 1e-6)
    stats = latent_lessons.channel_stats(lat)
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
        picture=_save(im, cfg),
    )
