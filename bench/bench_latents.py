"""Benchmark and docs pictures: generate_image's show_latents and hires fix on the built-in model.

    python bench/bench_latents.py [--prompts 6] [--steps 20] [--images docs/images]

1. Pictures for docs/generate_image.md (regenerated from the tool's own outputs, seed 0): the latent's channels
   next to the decoded image (show_latents) and the hires-fix strip (first pass, plain latent upscale,
   re-sampled).
2. Figures: over the first --prompts prompts of tools.scenes.eval_cases() (seed = index), hires_scale 2 at
   several hires_strength values: the sharpness (variance of the Laplacian) of the re-sampled image against
   the plain latent upscale of the same call, whether the pixel checker reads the same scene from the hires
   image (resized to 64) as from the first pass, and the wall time against a plain 64 px call in the same run.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from tools import generate, scenes
from tools.config import LabConfig

DOC_PROMPT = "a medium white circle in the bottom right on a black background"
KEYS = ("background", "colour", "shape", "position", "size")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=6)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--strengths", default="0.3,0.5,0.7")
    ap.add_argument("--images", type=Path, default=Path("docs/images"), help="where the docs pictures go")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    cfg = LabConfig.create(tmp / "out", [tmp])

    def run(**kw):
        t0 = time.perf_counter()
        out = generate.run(generate.GenerateInput(steps=args.steps, **kw), cfg)
        return out.result, time.perf_counter() - t0

    # 1. docs pictures
    r, _ = run(prompt=DOC_PROMPT, show_latents=True)
    shutil.copy(r.latent.picture.path, args.images / "generate_image_latent_channels.png")
    print(
        f"latent {r.latent.shape}: "
        + ", ".join(f"ch{c.channel} {c.mean:+.2f}±{c.std:.2f}" for c in r.latent.channels)
    )
    r, _ = run(prompt=DOC_PROMPT, hires_scale=2, hires_strength=0.5)
    shutil.copy(r.hires.strip.path, args.images / "generate_image_hires_fix.png")
    print(f"docs hires strip: {r.hires.sharpness}")

    # 2. figures
    cases = scenes.eval_cases()[: args.prompts]
    strengths = [float(s) for s in args.strengths.split(",")]
    plain_s, ratios = [], {s: [] for s in strengths}
    same, hires_s = {s: 0 for s in strengths}, {s: [] for s in strengths}
    for i, case in enumerate(cases):
        first, t = run(prompt=case["prompt"], seed=i)
        plain_s.append(t)
        want = scenes.check_image(np.asarray(Image.open(first.images[0].path)))
        for s in strengths:
            r, t = run(prompt=case["prompt"], seed=i, hires_scale=2, hires_strength=s)
            hires_s[s].append(t)
            ratios[s].append(r.hires.sharpness.resampled / max(r.hires.sharpness.plain_upscale, 1e-9))
            im = Image.open(r.images[0].path).convert("RGB").resize((64, 64), Image.Resampling.BOX)
            got = scenes.check_image(np.asarray(im))
            same[s] += all(got.get(k) == want.get(k) for k in KEYS)
    print(
        f"{len(cases)} prompts, {args.steps} steps; plain 64 px call median {statistics.median(plain_s):.2f} s"
    )
    print(
        "hires_strength | re-sampled / plain-upscale sharpness (median, min) | same scene read | time vs plain"
    )
    for s in strengths:
        print(
            f"{s:g} | {statistics.median(ratios[s]):.2f}x, {min(ratios[s]):.2f}x | {same[s]}/{len(cases)} | "
            f"{statistics.median(hires_s[s]) / statistics.median(plain_s):.2f}x"
        )


if __name__ == "__main__":
    main()
