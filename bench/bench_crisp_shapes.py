"""Benchmark: what limits crisp shapes, the autoencoder or the UNet? Shape accuracy by shape and size.

    python bench/bench_crisp_shapes.py [--model-dir tools/assets/builtin] [--seeds 2]

For every shape x size x position (45 scenes, no jitter, one colour pair per scene), three images go through
the pixel checker (tools.scenes.check_image, independent of the model):
  render:          the ground truth (the checker is exact on it: the reference row);
  reconstruction:  the model's VAE, encode then decode (the ceiling any UNet could reach);
  generated:       the full pipeline from the canonical prompt (20 steps, guidance 3, --seeds seeds each).
If reconstructions keep the shape and generated images lose it, the UNet (training) is the limit; if the
reconstructions already lose it, the autoencoder is. Also prints the reconstruction PSNR per size.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import math
import os
import random
from pathlib import Path

import numpy as np
import torch

from tools import scenes

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def scene_list() -> list[scenes.Scene]:
    colours = list(scenes.COLOURS)
    out = []
    for k, (shape, size, pos) in enumerate(itertools.product(scenes.SHAPES, scenes.SIZES, scenes.POSITIONS)):
        fg = colours[k % len(colours)]
        bg = colours[(k * 3 + 1) % len(colours)]
        bg = bg if bg != fg else colours[(k * 3 + 2) % len(colours)]
        out.append(scenes.Scene(fg, shape, size, pos, bg))
    return out


def to_uint8(x: torch.Tensor) -> np.ndarray:
    return ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()  # (N, 64, 64, 3)


def table(name: str, items: list[scenes.Scene], images: list[np.ndarray]) -> None:
    cells = []
    for shape in scenes.SHAPES:
        row = []
        for size in scenes.SIZES:
            idx = [i for i, s in enumerate(items) if s.shape == shape and s.size == size]
            ok = sum(scenes.check_image(images[i])["shape"] == shape for i in idx)
            row.append(f"{ok / len(idx):.0%}")
        cells.append(f"{shape}: " + " / ".join(row))
    total = np.mean([scenes.check_image(im)["shape"] == s.shape for s, im in zip(items, images, strict=True)])
    print(f"| {name} | {total:.0%} | " + " | ".join(cells) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", type=Path, default=ROOT / "tools" / "assets" / "builtin")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument(
        "--jittered", type=int, default=40, help="extra reconstructions per shape and size, jittered"
    )
    args = ap.parse_args()
    torch.set_num_threads(1)
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(
        args.model_dir, safety_checker=None, feature_extractor=None, requires_safety_checker=False
    ).to(torch.float32)
    pipe.set_progress_bar_config(disable=True)
    items = scene_list()
    truth = [scenes.render(s) for s in items]
    x = torch.from_numpy(np.stack(truth)).permute(0, 3, 1, 2).float() / 127.5 - 1  # (N, 3, 64, 64)
    with torch.no_grad():
        rec = pipe.vae.decode(pipe.vae.encode(x).latent_dist.mode()).sample.clamp(-1, 1)  # (N, 3, 64, 64)
    recon = list(to_uint8(rec))
    gen_items, generated = [], []
    for seed in range(args.seeds):  # --seeds 0: reconstructions only
        out = pipe(
            [scenes.canonical_prompt(s.attributes()) for s in items],
            num_inference_steps=20,
            guidance_scale=3.0,
            generator=torch.Generator().manual_seed(seed),
            output_type="np",
            height=64,
            width=64,
        )
        generated += [(im * 255).round().astype(np.uint8) for im in out.images]
        gen_items += items
    print(
        f"model {args.model_dir}: {len(items)} scenes, shape right (overall | per shape: small / medium / large)\n"
    )
    print("| images | overall | by shape and size |\n|---|---|---|")
    table("render (reference)", items, truth)
    table("VAE reconstruction", items, recon)
    if generated:
        table(f"generated ({args.seeds} seeds)", gen_items, generated)
    # more reconstructions: random positions, colours and jitter, as in training
    rng = random.Random(0)
    extra = [
        dataclasses.replace(scenes.sample_scene(rng, allow_held_out=True), shape=shape, size=size)
        for shape in scenes.SHAPES
        for size in scenes.SIZES
        for _ in range(args.jittered)
    ]
    xe = torch.from_numpy(np.stack([scenes.render(s) for s in extra])).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        rece = torch.cat(
            [pipe.vae.decode(pipe.vae.encode(c).latent_dist.mode()).sample for c in xe.split(90)]
        )
    table(f"VAE reconstruction, jittered ({args.jittered} each)", extra, list(to_uint8(rece)))
    for size in scenes.SIZES:
        idx = [i for i, s in enumerate(items) if s.size == size]
        mse = torch.mean((rec[idx] - x[idx]) ** 2).item()
        print(f"reconstruction PSNR, {size}: {10 * math.log10(4 / mse):.1f} dB")


if __name__ == "__main__":
    main()
