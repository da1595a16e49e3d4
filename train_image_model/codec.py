"""Stage 5 (`--stage codec`): an autoencoder for outlines it was never shown (measured; not shipped yet).

Measured before this stage (shipped VAE, 24 jittered renders per cell, `tools.teach_image.shapes.shows`): a star
survives the VAE round trip at large size 79%, medium 0%, small 0%; small squares 8%. The autoencoder was only
ever trained on circles, squares and triangles, so teaching a new word (issue 13) hit the codec before the UNet.

A real image codec is trained on everything, so this stage trains the autoencoder on *generic* outlines: random
polygons (convex and concave), regular polygons, stars with 4, 6, 7 or 8 points, ellipses, rotated rectangles and
crosses, in the scenes' colours, sizes and positions; half of each batch is the scenes' own shapes (half of those
small). Never a five-pointed star and never a heart: those stay unseen by every part of the model, so
bench/bench_teach.py still teaches a shape the model never saw. The scenes' latents are anchored to the original
encoder's (the UNet was trained on them; see train_codec), so the UNet needs no retraining.

Measured (one core, 0.3-0.45 s/step): with the encoder frozen (decoder only, 1250 steps), medium stars 0% -> 4%
and small squares 12% -> 12%; with the encoder trained too (anchored, latent drift 0.02-0.05%, 1500 steps),
medium stars 0% -> 4%, small squares 12% -> 29%, small triangles 38% -> 42%, PSNR on the scenes 29.0 -> 28.7 dB.
No gain worth shipping at this length: the stage is kept to be run much longer (or on a GPU), not used by the
shipped model.

Writes <run>/codec.pt (weights, anchor, optimizer, random states, step) every 100 steps and exports the VAE to
<run>/export_vae every --codec-report-every steps with its round-trip report in <run>/codec_report.jsonl.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from train_builtin_model import gradient_l1, to_tensor  # beside this file; run through that script

from tools import scenes
from tools.teach_image import shapes

log = logging.getLogger("train")

KINDS = ("polygon", "regular", "star", "ellipse", "rectangle", "cross")
STAR_POINTS = (4, 6, 7, 8)  # never 5: the five-pointed star is the taught shape of bench/bench_teach.py


def generic_outline(
    rng: random.Random, cx: float, cy: float, h: float
) -> tuple[str, list[tuple[float, float]]]:
    """A random outline within the (cx +- h, cy +- h) box: (kind, polygon points)."""
    kind = rng.choice(KINDS)
    turn = rng.uniform(0, 2 * math.pi)
    if kind == "polygon":  # random angles, random radii: convex or concave
        n = rng.randint(4, 9)
        angles = sorted(rng.uniform(0, 2 * math.pi) for _ in range(n))
        radii = [h * rng.uniform(0.45, 1.0) for _ in range(n)]
    elif kind == "regular":
        n = rng.randint(3, 8)
        angles = [turn + 2 * math.pi * k / n for k in range(n)]
        radii = [h] * n
    elif kind == "star":
        n, inner = rng.choice(STAR_POINTS), rng.uniform(0.35, 0.65)
        angles = [turn + math.pi * k / n for k in range(2 * n)]
        radii = [h if k % 2 == 0 else inner * h for k in range(2 * n)]
    elif kind == "ellipse":
        a, b = h, h * rng.uniform(0.35, 1.0)
        pts = [(a * math.cos(2 * math.pi * k / 48), b * math.sin(2 * math.pi * k / 48)) for k in range(48)]
        return kind, _turned(pts, turn, cx, cy)
    elif kind == "rectangle":
        a, b = h, h * rng.uniform(0.3, 1.0)
        return kind, _turned([(-a, -b), (a, -b), (a, b), (-a, b)], turn, cx, cy)
    else:  # cross: a plus sign with arms of random thickness
        t = h * rng.uniform(0.25, 0.45)
        arm = [
            (-t, -h),
            (t, -h),
            (t, -t),
            (h, -t),
            (h, t),
            (t, t),
            (t, h),
            (-t, h),
            (-t, t),
            (-h, t),
            (-h, -t),
            (-t, -t),
        ]
        return kind, _turned(arm, turn, cx, cy)
    return kind, [(cx + r * math.cos(a), cy + r * math.sin(a)) for a, r in zip(angles, radii, strict=True)]


def _turned(pts: list[tuple[float, float]], turn: float, cx: float, cy: float) -> list[tuple[float, float]]:
    c, s = math.cos(turn), math.sin(turn)
    return [(cx + c * x - s * y, cy + s * x + c * y) for x, y in pts]


def render_generic(rng: random.Random) -> np.ndarray:
    """(64, 64, 3) uint8: a scene (colours, position, size, jitter as tools.scenes) with a generic outline."""
    base = scenes.sample_scene(rng, allow_held_out=True)
    s = 4
    img = Image.new("RGB", (64 * s, 64 * s), scenes._clip(scenes.COLOURS[base.background], base.bg_tint))
    px, py = scenes.POSITIONS[base.position]
    h = scenes.SIZES[base.size] + rng.uniform(-2.0, 2.0)  # sizes between the named ones too
    _, pts = generic_outline(rng, (px + base.dx) * s, (py + base.dy) * s, h * s)
    ImageDraw.Draw(img).polygon(pts, fill=scenes._clip(scenes.COLOURS[base.colour], base.tint))
    return np.asarray(img.resize((64, 64), Image.Resampling.BOX))


def render_batch(rng: random.Random, n: int) -> np.ndarray:
    """Half generic outlines, half the scenes' own shapes (half of those small, where corners suffer most)."""
    out = []
    for i in range(n):
        if i % 2 == 0:
            out.append(render_generic(rng))
        else:
            sc = scenes.sample_scene(rng)
            if rng.random() < 0.5:
                sc = dataclasses.replace(sc, size="small")
            out.append(scenes.render(sc))
    return np.stack(out)


@torch.no_grad()
def round_trip_report(vae, anchor, per_cell: int = 24) -> dict:
    """Share of VAE round trips that `shapes.shows` reads as the drawn shape, per shape and size (fixed scenes;
    the star and the heart were never in the codec's data); on 256 fixed scenes the PSNR, the shape read back,
    and the drift: relative MSE between `vae`'s and the original encoder's (`anchor`) latents (0 = unchanged)."""
    rng = random.Random(4242)
    report: dict[str, float] = {}
    for shape in shapes.ALL_SHAPES:
        for size in scenes.SIZES:
            items = [dataclasses.replace(shapes.sample_scene(rng, shape), size=size) for _ in range(per_cell)]
            x = to_tensor(np.stack([shapes.render(s) for s in items]))
            rec = vae.decode(vae.encode(x).latent_dist.mode()).sample.clamp(-1, 1)
            ims = ((rec + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
            report[f"{shape}_{size}"] = round(float(np.mean([shapes.shows(im, shape) for im in ims])), 3)
    rng = random.Random(999)
    test = [scenes.sample_scene(rng, allow_held_out=True) for _ in range(256)]
    x = to_tensor(np.stack([scenes.render(s) for s in test]))
    z = vae.encode(x).latent_dist.mode()
    z_old = anchor.encode(x).latent_dist.mode()
    report["scenes_drift"] = round(float(F.mse_loss(z, z_old) / z_old.var()), 5)
    rec = vae.decode(z).sample.clamp(-1, 1)
    report["scenes_psnr"] = round(10 * math.log10(4.0 / F.mse_loss(rec, x).item()), 2)
    ims = ((rec + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    report["scenes_shape"] = round(scenes.score([s.attributes() for s in test], list(ims))["shape"], 3)
    return report


def train_codec(
    vae,
    run: Path,
    steps: int,
    report_every: int,
    seed: int,
    batch: int = 16,
    lr: float = 5e-4,
    anchor_weight: float = 20.0,
) -> None:
    """Fine-tune `vae` (encoder and decoder) on fresh batches from render_batch; resumable.

    The scenes' half of each batch is anchored: their latents must stay where the original encoder put them
    (relative MSE x anchor_weight), because the UNet was trained on those; the generic outlines may move.
    """
    anchor = copy.deepcopy(vae).eval().requires_grad_(False)  # the original encoder (the UNet's latent space)
    vae.requires_grad_(True)
    params = list(vae.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    gen, rng = torch.Generator().manual_seed(seed), random.Random(seed)
    ckpt, step = run / "codec.pt", 0
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        vae.load_state_dict(state["model"])
        anchor.load_state_dict(state["anchor"])
        opt.load_state_dict(state["opt"])
        gen.set_state(state["gen"])
        rng.setstate(state["rng"])
        step = state["step"]
        log.info("codec: resumed at step %d", step)
    else:
        _report(vae, anchor, run, 0)
    t0 = time.time()
    while step < steps:
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, (step + 1) / 50)
        x = to_tensor(render_batch(rng, batch))  # even rows generic outlines, odd rows the scenes' shapes
        vae.train()
        z = vae.encode(x).latent_dist.mode()
        with torch.no_grad():
            z_old = anchor.encode(x[1::2]).latent_dist.mode()
        drift = F.mse_loss(z[1::2], z_old) / z_old.var()
        z = z + 0.05 * z.detach().std() * torch.randn(z.shape, generator=gen)
        rec = vae.decode(z).sample
        mse = F.mse_loss(rec, x)
        loss = mse + (rec - x).abs().mean() + gradient_l1(rec, x) + anchor_weight * drift
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        if step % 50 == 0:
            psnr = 10 * math.log10(4.0 / max(mse.item(), 1e-10))
            log.info(
                "codec step %d loss %.4f psnr %.1f dB drift %.4f %.2f s/step",
                step, loss.item(), psnr, drift.item(), (time.time() - t0) / 50,
            )  # fmt: skip
            t0 = time.time()
        if step % 100 == 0 or step == steps:
            tmp = ckpt.with_suffix(".tmp")
            torch.save(
                {
                    "model": vae.state_dict(), "anchor": anchor.state_dict(), "opt": opt.state_dict(),
                    "gen": gen.get_state(), "rng": rng.getstate(), "step": step,
                },
                tmp,
            )  # fmt: skip
            tmp.replace(ckpt)
        if step % report_every == 0 or step == steps:
            _report(vae, anchor, run, step)
            vae.save_pretrained(run / "export_vae")
    vae.eval()


def _report(vae, anchor, run: Path, step: int) -> None:
    vae.eval()
    report = round_trip_report(vae, anchor)
    log.info("codec step %d round trip %s", step, json.dumps(report))
    with open(run / "codec_report.jsonl", "a") as f:
        f.write(json.dumps({"step": step, **report}) + "\n")
