"""Make the teach_image_model pictures in docs/images (inputs, their copies, before/after grid, loss plot) with the tool itself.

    python bench/teach_docs_images.py [--threads 1]

Renders the 8 large stars bench/bench_teach.py trains on (tools/teach_image/shapes.py, seed 7), runs
teach_image_model with all its defaults on them (captions read from the pixels, 8 re-coloured, moved copies of
each), and copies the tool's grid and loss plot next to the inputs strip.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tools.common import NullReporter
from tools.config import LabConfig
from tools.teach_image import TeachImageInput, shapes
from tools.teach_image import run as teach_run
from tools.teach_image.lab import copies_for

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    work = Path("/tmp/teach_docs")
    shutil.rmtree(work, ignore_errors=True)
    (work / "in").mkdir(parents=True)
    rng = random.Random(7)
    items = [dataclasses.replace(shapes.sample_scene(rng, "star"), size="large") for _ in range(8)]
    renders = [shapes.render(s) for s in items]
    files = []
    for i, im in enumerate(renders):
        files.append(str(work / "in" / f"star{i + 1}.png"))
        Image.fromarray(im).save(files[-1])
    strip = Image.fromarray(np.concatenate(renders, axis=1))
    strip.resize((strip.width * 2, strip.height * 2), Image.Resampling.NEAREST).save(
        IMAGES / "teach_image_model_inputs.png"
    )
    # all defaults, as a user calls it: captions from the template, read from each picture's pixels, and 8
    # re-coloured, moved copies of each picture; the copies of the first two pictures, as the tool makes them
    call = TeachImageInput(word="star", images=files)
    copies, _, _ = copies_for(call, renders)
    strip = Image.fromarray(
        np.concatenate([np.concatenate(copies[:8], 1), np.concatenate(copies[8:16], 1)], 0)
    )
    strip.resize((strip.width * 2, strip.height * 2), Image.Resampling.NEAREST).save(
        IMAGES / "teach_image_model_copies.png"
    )
    cfg = LabConfig.create(work / "out", [str(work / "in")])
    t0 = time.perf_counter()
    out = teach_run(call, cfg, NullReporter())
    r = out.result  # type: ignore[assignment]
    print(f"{r.steps_run} steps in {time.perf_counter() - t0:.0f} s (whole call); grid {r.grid.path}")
    print(f"captions: {r.captions}; {r.augmented} copies")
    shutil.copy(r.grid.path, IMAGES / "teach_image_model_star.png")
    shutil.copy(r.loss_plot.path, IMAGES / "teach_image_model_loss.png")


if __name__ == "__main__":
    main()
