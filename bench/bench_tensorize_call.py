"""Benchmark: the WHOLE tensorize_image call through a real MCP client over stdio, against the bare by-hand
conversion a user would write, on a 12-megapixel JPEG made here with Pillow.

    python bench/bench_tensorize_call.py [--repeat 7] [--width 4000 --height 3000]

Measured in one run, rounds interleaved so that background load hits every variant alike (best and median):
  by hand              Image.open(path).convert("RGB") -> torch.from_numpy(np.array(im)).permute(2, 0, 1)
                       .float() / 255 -> (x - mean) / std                     (the reference)
  by hand, 1 thread    the same with torch.set_num_threads(1): shows whether the reference lost time to
                       torch's threads contending with other work on the machine
  call, imagenet       call_tool("tensorize_image", {image, normalize="imagenet"}): decode, tensor, stats,
                       preview, picture (PNG), result, JSON-RPC over stdio, parsed by the client
  by hand, resize      the same with im.resize((1024, 768), BILINEAR) after the decode
  call, resize 1024    call_tool(..., resize=1024, normalize="imagenet"), JPEG draft decoding (the default)
Targets: call / by hand <= 1.0 at full size; call with resize 1024 / by hand <= 0.6.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from mcp import Client, StdioServerParameters
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


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


def by_hand(path: Path, resize: tuple[int, int] | None = None) -> torch.Tensor:
    im = Image.open(path).convert("RGB")
    if resize is not None:
        im = im.resize(resize, Image.Resampling.BILINEAR)
    x = torch.from_numpy(np.array(im)).permute(2, 0, 1).float() / 255
    return (x - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)


async def run(opts: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-call-"))
    path = tmp / "photo.jpg"
    path.write_bytes(make_jpeg(opts.width, opts.height))
    scale = 1024 / max(opts.width, opts.height)
    size = (round(opts.width * scale), round(opts.height * scale))
    params = StdioServerParameters(
        command=sys.executable,
        args=[
            "-m",
            "mcp_server",
            "--output-dir",
            str(tmp / "out"),
            "--allow-dir",
            str(tmp),
            "--log-level",
            "WARNING",
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"},
        cwd=str(ROOT),
    )
    mp = opts.width * opts.height / 1e6
    print(
        f"JPEG {opts.width}x{opts.height} ({mp:.1f} MP, {path.stat().st_size / 1e6:.1f} MB), repeat {opts.repeat}"
    )
    async with Client(params, mode="legacy") as c:
        full = {"image": str(path), "normalize": "imagenet"}
        small = {"image": str(path), "normalize": "imagenet", "resize": 1024}
        for args in (full, small):  # warm-up: imports, first-call costs
            res = await c.call_tool("tensorize_image", args)
            assert not res.is_error, res.content[0]
        got = res.structured_content
        assert got["shape"] == [3, size[1], size[0]], got["shape"]
        kb = sum(len(getattr(b, "data", "") or getattr(b, "text", "")) for b in res.content) / 1024

        async def call(args: dict) -> None:
            r = await c.call_tool("tensorize_image", args)
            assert not r.is_error

        threads = torch.get_num_threads()

        def by_hand_one_thread() -> torch.Tensor:
            torch.set_num_threads(1)
            try:
                return by_hand(path)
            finally:
                torch.set_num_threads(threads)

        variants = {
            "by hand, imagenet": lambda: by_hand(path),
            "by hand, 1 torch thread": by_hand_one_thread,
            "call, imagenet": lambda: call(full),
            "by hand, resize 1024": lambda: by_hand(path, size),
            "call, resize 1024 + draft": lambda: call(small),
        }
        times: dict[str, list[float]] = {k: [] for k in variants}
        for _ in range(opts.repeat):
            for name, fn in variants.items():
                t0 = time.perf_counter()
                out = fn()
                if asyncio.iscoroutine(out):
                    await out
                times[name].append(time.perf_counter() - t0)
    ref = times["by hand, imagenet"]
    print(f"{'':<28}{'best s':>8}{'median s':>10}{'best x':>8}{'median x':>10}   (x = / by hand, imagenet)")
    for name, ts in times.items():
        best, med = min(ts), statistics.median(ts)
        print(
            f"{name:<28}{best:>8.3f}{med:>10.3f}{best / min(ref):>8.2f}{med / statistics.median(ref):>10.2f}"
        )
    r_full = statistics.median(times["call, imagenet"]) / statistics.median(ref)
    r_small = statistics.median(times["call, resize 1024 + draft"]) / statistics.median(ref)
    r_small_hand = statistics.median(times["call, resize 1024 + draft"]) / statistics.median(
        times["by hand, resize 1024"]
    )
    print(f"-> whole call / by hand (12 MP, imagenet, median): {r_full:.2f} (target <= 1.0)")
    print(f"-> whole call with resize 1024 + draft / by hand (median): {r_small:.2f} (target <= 0.6)")
    print(f"   ... / by hand with the same resize: {r_small_hand:.2f}; result on the wire ~{kb:.0f} KB")
    r_one = statistics.median(times["call, imagenet"]) / statistics.median(times["by hand, 1 torch thread"])
    print(
        f"   whole call / by hand with torch on 1 thread (no thread contention in the reference): {r_one:.2f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--width", type=int, default=4000)
    ap.add_argument("--height", type=int, default=3000)
    ap.add_argument("--repeat", type=int, default=7)
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()
