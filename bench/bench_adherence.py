"""Benchmark: prompt adherence of the built-in model, read from the pixels by tools.scenes.check_image.

    python bench/bench_adherence.py [--steps 20] [--guidance 3] [--scheduler default] [--grid docs/images/...]

Runs the fixed evaluation list (tools.scenes.eval_cases: >= 50 prompts, 16 of them attribute combinations
held out of training) through generate_image, one call per prompt (seed = index), and prints the fraction
right per attribute (background colour, foreground colour, shape, position, size), overall and on the
held-out combinations, as a markdown table. Saves a grid of every output (prompt order) as a PNG.
Targets: background >= 95%, colour >= 90%, shape >= 85%, position >= 85%, size >= 75%.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from tools import generate, scenes
from tools.config import LabConfig

ROOT = Path(__file__).resolve().parents[1]

TARGETS = {"background": 0.95, "colour": 0.90, "shape": 0.85, "position": 0.85, "size": 0.75}


def grid(images: list[np.ndarray], cols: int = 8, pad: int = 2) -> Image.Image:
    rows = -(-len(images) // cols)
    h, w = images[0].shape[:2]
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        out[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = im
    return Image.fromarray(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--guidance", type=float, default=3.0)
    ap.add_argument("--scheduler", default="default")
    ap.add_argument("--grid", type=Path, default=ROOT / "docs" / "images" / "generate_image_adherence.png")
    ap.add_argument("--json", type=Path, default=None, help="also write the scores here")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp()
    cfg = LabConfig.create(Path(tmp) / "out", [tmp])
    cases = scenes.eval_cases()
    images, t0 = [], time.perf_counter()
    for i, case in enumerate(cases):
        out = generate.run(
            generate.GenerateInput(
                prompt=case["prompt"],
                steps=args.steps,
                guidance_scale=args.guidance,
                seed=i,
                scheduler=args.scheduler,
            ),
            cfg,
        )
        images.append(np.asarray(Image.open(out.result.images[0].path).convert("RGB")))
    elapsed = time.perf_counter() - t0
    held = [i for i, c in enumerate(cases) if c["held_out"] == "yes"]
    rows = {
        "all prompts": scenes.score(cases, images),
        "held-out combinations": scenes.score([cases[i] for i in held], [images[i] for i in held]),
    }
    print(
        f"{len(cases)} prompts ({len(held)} held out), {args.steps} steps, guidance {args.guidance}, "
        f"scheduler {args.scheduler}: {elapsed:.1f} s ({elapsed / len(cases):.2f} s per image)\n"
    )
    attrs = [*scenes.ATTRIBUTES, "all"]
    print("| | " + " | ".join(a if a != "colour" else "fg colour" for a in attrs) + " |")
    print("|---" * (len(attrs) + 1) + "|")
    print("| target | " + " | ".join(f">= {TARGETS[a]:.0%}" if a in TARGETS else "" for a in attrs) + " |")
    for name, sc in rows.items():
        print(f"| {name} | " + " | ".join(f"{sc[a]:.0%}" for a in attrs) + " |")
    args.grid.parent.mkdir(parents=True, exist_ok=True)
    g = grid(images)
    g.resize((g.width * 2, g.height * 2), Image.Resampling.NEAREST).save(args.grid)
    print(f"\ngrid: {args.grid}")
    if args.json:
        args.json.write_text(json.dumps({k: v for k, v in rows.items()}, indent=1))


if __name__ == "__main__":
    main()
