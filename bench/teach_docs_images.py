"""Make the teach_image_model pictures in docs/images (inputs, before/after grid, loss plot) with the tool itself.

    python bench/teach_docs_images.py [--threads 1]

Renders the 8 large stars bench/bench_teach.py trains on (tools/teach_image/shapes.py, seed 7), runs
teach_image_model with its defaults on them and their true captions (as the bench), and copies the tool's grid
and loss plot next to the inputs strip.
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
from tools.teach_image.schema import DEFAULT_TEMPLATE

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
    # the captions bench_teach uses (the renders' own attributes): the pixel checker's size reading, made for
    # circles, squares and triangles, calls half of these large stars medium (thin points add little extent)
    captions = [DEFAULT_TEMPLATE.format(word="star", **s.attributes()) for s in items]
    files = []
    for i, im in enumerate(renders):
        files.append(str(work / "in" / f"star{i + 1}.png"))
        Image.fromarray(im).save(files[-1])
    strip = Image.fromarray(np.concatenate(renders, axis=1))
    strip.resize((strip.width * 2, strip.height * 2), Image.Resampling.NEAREST).save(
        IMAGES / "teach_image_model_inputs.png"
    )
    cfg = LabConfig.create(work / "out", [str(work / "in")])
    t0 = time.perf_counter()
    out = teach_run(TeachImageInput(word="star", images=files, captions=captions), cfg, NullReporter())
    r = out.result  # type: ignore[assignment]
    print(f"{r.steps_run} steps in {time.perf_counter() - t0:.0f} s (whole call); grid {r.grid.path}")
    shutil.copy(r.grid.path, IMAGES / "teach_image_model_star.png")
    shutil.copy(r.loss_plot.path, IMAGES / "teach_image_model_loss.png")


if __name__ == "__main__":
    main()
