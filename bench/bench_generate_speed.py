"""Benchmark: generate_image against calling the diffusers pipeline directly, same weights, same run.

    python bench/bench_generate_speed.py [--repeat 15] [--steps 20] [--model-dir DIR]

Both sides load the built-in model (or --model-dir) once, warm up, then alternate call by call, so background
load on a shared machine hits both alike. Direct: `StableDiffusionPipeline(prompt, num_inference_steps=20,
guidance_scale=3, generator=...)` with PIL output. Tool: `tools.generate.run` (validation, tokenizer report,
encode, denoise, decode, PNG saved to disk, inline PNG). Prints median and best wall time of each and their
ratio, and the process RSS with the model loaded. Targets: tool < 0.6 s at 64x64 / 20 steps, overhead <= 5%.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from tools import diffusion_models as dm
from tools import generate
from tools.config import LabConfig


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--guidance", type=float, default=3.0)
    ap.add_argument("--model-dir", type=Path, default=None)
    ap.add_argument("--prompt", default="a small red circle in the top left on a blue background")
    ap.add_argument(
        "--threads", type=int, default=0, help="torch threads for both sides (0: torch's default)"
    )
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from diffusers import StableDiffusionPipeline

    tmp = tempfile.mkdtemp()
    cfg = LabConfig.create(Path(tmp) / "out", [tmp], [args.model_dir] if args.model_dir else [])
    model = args.model_dir.name if args.model_dir else "builtin"
    info = dm.find_model(cfg, model)
    direct = StableDiffusionPipeline.from_pretrained(
        info.path,
        local_files_only=True,
        dtype=torch.float32,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    direct.set_progress_bar_config(disable=True)
    tool_args = generate.GenerateInput(
        prompt=args.prompt, model=model, steps=args.steps, guidance_scale=args.guidance, seed=0
    )

    def run_direct():
        g = torch.Generator().manual_seed(0)
        return direct(
            args.prompt,
            num_inference_steps=args.steps,
            guidance_scale=args.guidance,
            generator=g,
            height=info.native_size,
            width=info.native_size,
        ).images[0]

    def run_tool():
        return generate.run(tool_args, cfg)

    for _ in range(3):  # warm-up: load, first-call allocations
        run_direct()
        run_tool()
    times: dict[str, list[float]] = {"direct": [], "tool": []}
    for _ in range(args.repeat):
        for name, fn in (("direct", run_direct), ("tool", run_tool)):
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    best = {k: min(v) for k, v in times.items()}
    print(
        f"model {model} ({info.native_size}x{info.native_size}), {args.steps} steps, guidance {args.guidance}, "
        f"torch threads {torch.get_num_threads()}, cpu count {os.cpu_count()}, repeat {args.repeat}"
    )
    print(f"{'':8} {'median s':>9} {'best s':>8}")
    for k in ("direct", "tool"):
        print(f"{k:8} {med[k]:9.3f} {best[k]:8.3f}")
    print(
        f"tool / direct: median {med['tool'] / med['direct']:.3f}x, best {best['tool'] / best['direct']:.3f}x"
    )
    print(f"RSS with two copies of the model loaded (direct + tool's cache): {rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
