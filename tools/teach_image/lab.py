"""teach_image_model, read as numbered steps: check, caption, draw 'before', teach, save, draw 'after', report."""

from __future__ import annotations

import io
import json
import random
from contextlib import contextmanager

import numpy as np
import torch
from PIL import Image

from tools import diffusion_models as dm
from tools import scenes
from tools.common import InlineImage, InvalidArgument, Reporter, ToolOutput, report_partial
from tools.config import LabConfig
from tools.generate.schema import BUILTIN_GUIDANCE, SavedImage
from tools.images import decode, figure_to_png, open_image_input, save_png, to_inline_png
from tools.paths import output_uri
from tools.teach_image import augment, lora, picture, store
from tools.teach_image.schema import (
    DEFAULT_TEMPLATE,
    LossCurve,
    SizeAtRank,
    TeachImageInput,
    TeachImageResult,
)

GRID_SCENES = (  # (size, colour, position, background): colours and corners varied on purpose
    ("large", "red", "top left", "blue"),
    ("large", "yellow", "bottom right", "purple"),
    ("large", "white", "center", "green"),  # large: a medium star does not survive the VAE (docs)
    ("large", "orange", "top right", "black"),
)
RANKS_SHOWN = [1, 2, 4, 8, 16, 32, 64]


def check_word(word: str, info: dm.ModelInfo) -> None:
    vocab = json.loads((dm.BUILTIN_DIR / "tokenizer" / "vocab.json").read_text(encoding="utf-8"))
    if word in (info.vocabulary or []) or word + "</w>" in vocab or word in vocab:
        raise InvalidArgument(
            "word", word, "already in the built-in model's vocabulary (list_models); teach a new word"
        )


def load_images(args: TeachImageInput, cfg: LabConfig) -> list[np.ndarray]:
    """Each image as (64, 64, 3) uint8 RGB, refused by its index if unreadable."""
    out = []
    for i, value in enumerate(args.images):
        src = open_image_input(value, cfg, f"images[{i}]")
        im = decode(src.image, f"images[{i}]", src.description).convert("RGB")
        out.append(np.asarray(im.resize((scenes.IMAGE_SIZE, scenes.IMAGE_SIZE), Image.Resampling.LANCZOS)))
    return out


def captions_for(args: TeachImageInput, images: list[np.ndarray]) -> list[str]:
    """The given captions, or the template filled in from what the pixel checker reads in each image."""
    if args.captions is not None:
        return list(args.captions)
    template = args.template or DEFAULT_TEMPLATE
    out = []
    for i, im in enumerate(images):
        seen = scenes.check_image(im)
        needed = [k for k in ("colour", "background", "position", "size") if "{" + k + "}" in template]
        missing = [k for k in needed if seen.get(k) is None]
        if missing:
            raise InvalidArgument(
                f"images[{i}]",
                args.images[i][:80],
                f"no single flat-coloured thing on a plain background found, so {missing} cannot be read "
                "from it; give `captions` (one per image) instead of a template",
            )
        out.append(template.format(word=args.word, **{k: seen[k] for k in needed}))
    return out


def copies_for(
    args: TeachImageInput, images: list[np.ndarray]
) -> tuple[list[np.ndarray], list[str], list[int]]:
    """args.augment re-coloured, moved copies of each flat picture with their captions (template captions only:
    a caption written by hand cannot be re-coloured), and the indices of the pictures that are not flat."""
    if args.captions is not None or args.augment == 0:
        return [], [], []
    template = args.template or DEFAULT_TEMPLATE
    attributes = [scenes.check_image(im) for im in images]
    return augment.expand(images, attributes, template, args.word, args.augment, random.Random(args.seed))


@contextmanager
def cancellable(pipe, reporter: Reporter):
    """Check for cancellation before each UNet and VAE-encoder block, forward and backward: a training step takes
    seconds on busy cores, a block a fraction of that."""
    unet, encoder = pipe.unet, pipe.vae.encoder
    blocks = [
        unet,
        *unet.down_blocks,
        unet.mid_block,
        *unet.up_blocks,
        *encoder.down_blocks,
        encoder.mid_block,
    ]
    handles = [b.register_forward_pre_hook(lambda m, a: reporter.check_cancelled()) for b in blocks]
    # backward runs through the up blocks and the middle first (the down blocks return nested tuples, which
    # backward hooks do not support)
    backward = [unet.mid_block, *unet.up_blocks]
    handles += [b.register_full_backward_pre_hook(lambda m, g: reporter.check_cancelled()) for b in backward]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def sample(pipe, prompts: list[str], args: TeachImageInput, scale: float, reporter: Reporter) -> list:
    """One picture per prompt (seed + i), the built-in model's guidance, LoRA at `scale`."""
    gens = [torch.Generator(device="cpu").manual_seed(args.seed + i) for i in range(len(prompts))]
    with torch.no_grad(), cancellable(pipe, reporter):
        return pipe(
            prompts, num_inference_steps=args.sample_steps, guidance_scale=BUILTIN_GUIDANCE, generator=gens,
            cross_attention_kwargs={"scale": scale},
        ).images  # fmt: skip


def _saved(im, cfg: LabConfig) -> SavedImage:
    path = save_png(im, cfg, "plots")
    return SavedImage(path=str(path), uri=output_uri(cfg, path), width=im.width, height=im.height)


def teach(args: TeachImageInput, cfg: LabConfig, reporter: Reporter) -> ToolOutput:
    # 1. checks: the word is new, the images open; the captions they will be trained with
    info = dm.find_model(cfg, dm.BUILTIN_NAME)
    check_word(args.word, info)
    cap = cfg.limits.max_time_budget_s
    budget = min(lora.TrainConfig.time_budget_s, cap) if args.time_budget_s is None else args.time_budget_s
    if budget > cap:
        raise InvalidArgument("time_budget_s", budget, f"at most {cap:g} (server limit max_time_budget_s)")
    images = load_images(args, cfg)
    captions = captions_for(args, images)
    copies, copy_captions, not_flat = copies_for(args, images)
    prompts = args.grid_prompts or [
        DEFAULT_TEMPLATE.format(word=args.word, size=s, colour=c, position=p, background=b)
        for s, c, p, b in GRID_SCENES
    ]
    reporter.progress(0, args.steps, "loading the built-in model")

    # 2. the model before: a private copy of the cached pipeline (the cache is never changed)
    cached, _ = dm.load_pipeline(info)
    pipe = lora.base_copy(cached)
    tokens_before = pipe.tokenizer.tokenize(args.word)
    before = sample(pipe, prompts, args, 1.0, reporter)

    # 3. teach: new token + embedding row, LoRA on the attention projections, the training loop
    with cancellable(pipe, reporter):
        latents = lora.encode_images(pipe.vae, images + copies)  # (N + copies, 4, 16, 16)
    tc = lora.TrainConfig(
        rank=args.rank, steps=args.steps, learning_rate=args.learning_rate, prior_weight=args.prior_weight,
        embedding_learning_rate=args.embedding_learning_rate,
        seed=args.seed, time_budget_s=budget,
    )  # fmt: skip

    def on_step(step: int, log: lora.TrainLog) -> None:
        reporter.progress(step, args.steps, f"step {step}/{args.steps}: loss {log.loss[-1]:.4f}")
        if step % 10 == 0 or step == args.steps:
            report_partial(reporter, {"steps": log.steps, "loss": log.loss, "prior_loss": log.prior_loss})

    with cancellable(pipe, reporter):
        taught, log = lora.train(pipe, args.word, latents, captions + copy_captions, tc, on_step)

    # 4. save in diffusers' formats; sizes
    folder = store.new_dir(cfg)
    lora_file, emb_file = lora.save(taught, folder)
    per_rank, layers = lora.lora_parameter_count(cached.unet, 1)
    sizes = [SizeAtRank(rank=r, parameters=r * per_rank, bytes_fp32=4 * r * per_rank) for r in RANKS_SHOWN]

    # 5. the model after, at each LoRA scale (same seeds as before)
    reporter.progress(args.steps, args.steps, "drawing the before/after grid")
    after = [sample(taught.pipe, prompts, args, s, reporter) for s in args.lora_scales]
    token_id, lora_parameters = taught.token_id, taught.lora_parameters
    hidden_size, unet_parameters = (
        pipe.text_encoder.config.hidden_size,
        sum(p.numel() for p in cached.unet.parameters()),
    )
    # Drop the model copy before drawing: matplotlib's mathtext parser (log-scale tick labels) raises and keeps
    # exceptions whose tracebacks hold this frame in a reference cycle, so its locals (~22 MB of weights here)
    # would live until Python's next full collection (measured: RSS swung 20-50 MB between calls).
    del taught, pipe, on_step
    columns = ["before teaching", *(f"LoRA scale {s:g}" for s in args.lora_scales)]
    grid_im = picture.grid(
        [[before[i], *(a[i] for a in after)] for i in range(len(prompts))], columns, prompts
    )
    fig = picture.curves(
        log.steps, log.loss, log.prior_loss, RANKS_SHOWN, [s.parameters for s in sizes], args.rank
    )
    plot_png = figure_to_png(fig)
    plot_im = Image.open(io.BytesIO(plot_png))
    lora_id = folder.name
    result = TeachImageResult(
        lora_id=lora_id,
        word=args.word,
        token_id=token_id,
        tokens_before=tokens_before,
        captions=captions,
        augmented=len(copies),
        not_flat=not_flat,
        rank=args.rank,
        lora_layers=layers,
        lora_parameters=lora_parameters,
        embedding_parameters=int(hidden_size),
        unet_parameters=unet_parameters,
        parameter_formula=f"r x sum over the {layers} attention projections of (in + out) = {args.rank} x "
        f"{per_rank} = {args.rank * per_rank}",
        size_by_rank=sizes,
        adapter_bytes=lora_file.stat().st_size,
        embedding_bytes=emb_file.stat().st_size,
        adapter_path=str(folder),
        steps_run=len(log.steps),
        train_seconds=round(log.seconds, 2),
        stopped_by_time=log.stopped_by_time,
        curve=LossCurve(
            steps=log.steps,
            loss=[round(x, 5) for x in log.loss],
            prior_loss=[round(x, 5) for x in log.prior_loss],
        ),
        grid_prompts=prompts,
        grid_columns=columns,
        grid=_saved(grid_im, cfg),
        loss_plot=_saved(plot_im, cfg),
        usage=f"generate_image(prompt={prompts[0]!r}, lora={lora_id!r}, lora_scale=1.0)",
    )
    store.write_info(
        folder, {"word": args.word, "base_model": info.path, "arguments": args.model_dump(mode="json"),
                 "result": result.model_dump(mode="json")}
    )  # fmt: skip
    copies_note = f" (+ {len(copies)} re-coloured, moved copies)" if copies else ""
    if not_flat:
        copies_note += f" (images {not_flat} are not one flat colour on another: no copies of them)"
    summary = (
        f"Taught {args.word!r} (new token id {token_id}; before it was split into {' '.join(tokens_before)}) "
        f"from {len(images)} images{copies_note}: {result.steps_run} steps in {result.train_seconds:.0f} s, final loss "
        f"{np.mean(log.loss[-10:]):.4f} (first steps {np.mean(log.loss[:10]):.4f}). LoRA rank {args.rank} on "
        f"{layers} attention projections: {lora_parameters} parameters ({result.adapter_bytes} bytes) vs "
        f"{result.unet_parameters} in the frozen UNet, plus {result.embedding_parameters} for the word. "
        f"Adapter {lora_id} (mllab://image-loras/{lora_id}); use it: {result.usage}"
    )
    return ToolOutput(
        result=result,
        images=[
            InlineImage(png=to_inline_png(grid_im), caption="rows: prompts; columns: " + ", ".join(columns)),
            InlineImage(png=plot_png, caption="loss per step; adapter size against rank"),
        ],
        summary=summary,
    )
