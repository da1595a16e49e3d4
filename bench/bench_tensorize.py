"""Benchmark: the core of tensorize_image on a 12-megapixel JPEG, against PIL decoding alone and by hand.

    python bench/bench_tensorize.py [--repeat 7] [--width 4000 --height 3000]

Everything is measured in this run, on the same bytes in memory, best of --repeat (rounds interleaved, so
background load hits every variant alike):
  decode alone   Image.open(...).load()                                   (the floor)
  by hand        decode -> np.asarray -> torch.from_numpy(...).permute(2, 0, 1).float() / 255 -> (x - mean) / std
  ours           tools.tensorize.tensorize_core (decode + to tensor + normalize; no stats, no picture)
and with a resize to a 1024 px longest side: decode-then-resize by hand vs ours (JPEG draft decoding).
Target: ours within 1.5x of decode alone, values identical to by hand; with resize, ours faster than
decode-then-resize. Statistics and the picture are timed on their own.
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tools.config import LabConfig
from tools.tensorize.core import plan, tensorize_core
from tools.tensorize.picture import draw as _picture
from tools.tensorize.report import histogram as _histogram
from tools.tensorize.report import stats as _stats
from tools.tensorize.schema import IMAGENET_MEAN, IMAGENET_STD, TensorizeInput


def make_jpeg(width: int, height: int, seed: int = 0) -> bytes:
    """Smooth colour fields plus fine noise: decodes like a photo (no flat areas to skip)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (height // 100 + 1, width // 100 + 1, 3), dtype=np.uint8)
    smooth = np.asarray(
        Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC), dtype=np.int16
    )
    noisy = np.clip(smooth + rng.integers(-12, 13, smooth.shape, dtype=np.int16), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noisy).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def decode_alone(data: bytes):
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def by_hand(data: bytes, normalize: str, resize: tuple[int, int] | None = None):
    im = decode_alone(data)
    if resize is not None:
        im = im.resize(resize, Image.Resampling.BILINEAR)
    x = torch.from_numpy(np.asarray(im)).permute(2, 0, 1).float() / 255
    if normalize == "imagenet":
        x = (x - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) / torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return x


def ours(data: bytes, args: TensorizeInput, cfg: LabConfig):
    im = Image.open(io.BytesIO(data))
    return tensorize_core(im, args, plan(im, args, cfg))


def best_of(fns: dict, repeat: int) -> dict[str, tuple[float, float]]:
    """Best wall-clock and best process CPU time (all threads, user + system) of each function."""
    best = {name: (float("inf"), float("inf")) for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            best[name] = (min(best[name][0], wall), min(best[name][1], cpu))
    return best


def table(title: str, times: dict, base: str, unit: str) -> None:
    bw, bc = times[base]
    print(f"\n{title:<36}{'wall s':>8}{unit:>10}{'cpu s':>8}{unit:>10}")
    for name, (wall, cpu) in times.items():
        print(f"{name:<36}{wall:>8.3f}{wall / bw:>10.2f}{cpu:>8.3f}{cpu / bc:>10.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--width", type=int, default=4000)
    ap.add_argument("--height", type=int, default=3000)
    ap.add_argument("--repeat", type=int, default=7)
    opts = ap.parse_args()
    import warnings

    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
    data = make_jpeg(opts.width, opts.height)
    tmp = Path(tempfile.mkdtemp(prefix="bench_tensorize_"))
    cfg = LabConfig.create(tmp / "out", [tmp])
    mp = opts.width * opts.height / 1e6
    print(
        f"JPEG {opts.width}x{opts.height} ({mp:.1f} MP, {len(data) / 1e6:.1f} MB), torch threads {torch.get_num_threads()}"
    )

    unit = TensorizeInput(image="x", normalize="unit")
    imagenet = TensorizeInput(image="x", normalize="imagenet")
    for name, args in (("unit", unit), ("imagenet", imagenet)):
        got, ref = ours(data, args, cfg).tensor, by_hand(data, name)
        print(
            f"identical values ({name}): {torch.equal(got, ref)}   max |diff| {(got - ref).abs().max().item():.3g}"
        )

    t = best_of(
        {
            "decode alone": lambda: decode_alone(data),
            "by hand, unit": lambda: by_hand(data, "unit"),
            "ours, unit": lambda: ours(data, unit, cfg),
            "by hand, imagenet": lambda: by_hand(data, "imagenet"),
            "ours, imagenet": lambda: ours(data, imagenet, cfg),
        },
        opts.repeat,
    )
    table("full size", t, "decode alone", "x decode")
    for col, label in ((0, "wall"), (1, "cpu")):
        ratio = t["ours, imagenet"][col] / t["decode alone"][col]
        vs_hand = t["ours, imagenet"][col] / t["by hand, imagenet"][col]
        print(
            f"-> {label}: ours/decode (imagenet) = {ratio:.2f} (target <= 1.5); ours/by hand = {vs_hand:.2f}"
        )

    scale = 1024 / max(opts.width, opts.height)
    size = (round(opts.width * scale), round(opts.height * scale))
    small = TensorizeInput(image="x", resize=1024, normalize="imagenet")
    no_draft = TensorizeInput(image="x", resize=1024, normalize="imagenet", jpeg_draft=False)
    r = best_of(
        {
            "by hand: decode, resize, tensor": lambda: by_hand(data, "imagenet", size),
            "ours without draft": lambda: ours(data, no_draft, cfg),
            "ours (JPEG draft)": lambda: ours(data, small, cfg),
        },
        opts.repeat,
    )
    table(f"resize to {size}", r, "by hand: decode, resize, tensor", "x by hand")
    drafted, full = ours(data, small, cfg).tensor, by_hand(data, "imagenet", size)
    print(
        f"draft vs decode-then-resize: mean |diff| {(drafted - full).abs().mean().item():.4f} (normalized units)"
    )

    core = ours(data, imagenet, cfg)
    names = core.plan.channels
    s = best_of(
        {
            "stats (histogram + 256-value map)": lambda: _stats(_histogram(core), core.lut, names),
            "picture (reduced copy, matplotlib)": lambda: _picture(core, _histogram(core), names, "imagenet"),
        },
        max(2, opts.repeat // 3),
    )
    print(f"\n{'around the core':<36}{'wall s':>8}{'cpu s':>8}")
    for name, (wall, cpu) in s.items():
        print(f"{name:<36}{wall:>8.3f}{cpu:>8.3f}")


if __name__ == "__main__":
    main()
