"""generate_image: text-to-image and image-to-image with a real latent diffusion pipeline (diffusers), offline.

One path for every model (the built-in one and any Stable Diffusion folder), read as numbered steps in `run`:
  1. check every argument against the model and the limits, before loading anything heavy;
  2. load (or reuse) the cached pipeline; pick the scheduler;
  3. tokenize (ids, truncation) and encode the prompt with the text encoder (timed: encode);
  4. denoise in latent space with the diffusers pipeline itself, output_type="latent" (timed: denoise); each
     step reports progress, checks for cancellation and, with show_steps, records the model's current
     prediction of the clean latent;
  5. decode the latents with the VAE (timed: decode), save full-size PNGs, return compact inline copies.
The lessons a call can ask for build their parts of the result in their own modules: show_steps and strengths
in denoise_lessons.py, show_latents and hires_scale in latent_lessons.py; decoding and saving in picture.py.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import torch
from diffusers import StableDiffusionImg2ImgPipeline

from tools import diffusion_models as dm
from tools.common import InlineImage, InvalidArgument, NullReporter, Reporter, ToolOutput
from tools.config import LabConfig
from tools.generate import denoise_lessons, latent_lessons, picture
from tools.generate.schema import (
    BUILTIN_GUIDANCE,
    SD_GUIDANCE,
    SHOW_FRAMES,
    GenerateInput,
    GenerateResult,
    Shapes,
    Timings,
    TokenInfo,
    UnknownWord,
)
from tools.images import decode, open_image_input
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
    hires_size = latent_lessons.check_hires(args, info, width, height, cfg)
    adapter = teach_use.check(args, cfg, info.path)  # generate_image(lora=...): a taught word, or None
    init = None
    if args.init_image is not None:
        src = open_image_input(args.init_image, cfg, "init_image")
        init = decode(src.image, "init_image", src.description).convert("RGB").resize((width, height))
    reporter.check_cancelled()

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
        recorder = denoise_lessons.PredictionRecorder(pipe, guidance) if args.show_steps else None
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
            pictures = picture.decode_latents(pipe, latents)
        else:  # one picture per strength, in the order given
            pictures = [picture.decode_latents(pipe, lat)[0] for _, _, lat in swept]
        decode_s = time.perf_counter() - t0
        saved = [picture.save(im, cfg) for im in pictures]
        inline = [
            InlineImage(
                png=picture.inline(im), caption=f"{args.model}: {args.prompt!r} (seed {args.seed}, #{k})"
            )
            for k, im in enumerate(pictures)
        ]
        strip, labels = denoise_lessons.steps_strip(args, pipe, cfg, frames, init, recorder, inline)
        hires = latent_lessons.hires_info(args, pipe, cfg, hires_pass, first_latents, pictures, inline)
        latent_view = latent_lessons.latent_view(args, pipe, cfg, info, latents, pictures, inline)
        sweep, sweep_strip, sweep_labels = denoise_lessons.strength_sweep(
            args, cfg, init, swept, pictures, saved, inline
        )
        labels = sweep_labels or labels  # with strengths, frame_labels are the sweep strip's
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
            summary += "\n" + latent_lessons.hires_summary(hires)
        if latent_view is not None:
            summary += "\n" + latent_lessons.latent_summary(latent_view)
        return ToolOutput(result=result, images=inline, summary=summary)
