"""Benchmark: server memory over thousands of mixed tool calls through a real MCP client over stdio.

    python bench/bench_memory_soak.py [--calls 2000] [--warmup 100] [--tools all] [--env NAME=VALUE ...]

Starts the server as a client would (`python -m mcp_server`, stdio, legacy handshake), makes `--warmup` calls
(a mix of every tool with small inputs: tensorize_image on a small PNG, train_toy_mlp with a few samples,
generate_image with the built-in model at 2 steps, explain_concept, list_models, tokenize_text, a 3-step
train_tiny_gpt and sample_text from it, a 2-step finetune_gpt (sft, dpo, grpo in turn) and compare_gpt_stages
on its lineage, and one refused call per round), reads the server's RSS from /proc, makes `--calls` more, and reports the growth in KB per call over
all of them and over their second half (where allocator warm-up is over). `--tools` restricts the mix (e.g.
`--tools generate_image` to isolate one tool); `--env` passes environment variables to the server (e.g.
MALLOC_ARENA_MAX=2 to test whether the growth is allocator arenas). Target: < 10 KB per call.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

from mcp import Client, StdioServerParameters
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def server_pid(marker: str) -> int:
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if marker in cmd and "mcp_server" in cmd:
                return int(pid)
    raise RuntimeError("server process not found")


TINY_GPT = {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 16, "batch_size": 4, "max_steps": 3,
            "eval_interval": 3, "eval_iters": 1, "sample_tokens": 4}  # fmt: skip


def mix(folder: Path, k: int) -> list[tuple[str, dict]]:
    """One round of small calls of every tool; seeds vary so that no cache can hide a leak."""
    image = folder / "small.png"
    if not image.exists():
        im = Image.new("RGB", (64, 48))
        im.putdata([((x * 5) % 256, (x // 7) % 256, 128) for x in range(64 * 48)])
        im.save(image)
    return [
        ("tensorize_image", {"image": str(image), "normalize": ["unit", "imagenet"][k % 2]}),
        ("train_toy_mlp", {"n_samples": 60, "epochs": 5, "hidden_layers": [4], "seed": k % 7}),
        (
            "generate_image",
            {"prompt": "a red circle in the center on a blue background", "steps": 2, "seed": k % 5},
        ),
        ("explain_concept", {"concept": ["relu", "softmax", "dropout"][k % 3]}),
        ("tokenize_text", {"text": ["strawberry", "a tensor of tokens"][k % 2], "tokenizer": "chars"}),
        ("train_tiny_gpt", {"corpus": "arithmetic", "seed": k % 3, **TINY_GPT}),
        ("sample_text", {"max_new_tokens": 2, "seed": k % 3}),
        ("finetune_gpt", {"method": ["sft", "dpo", "grpo"][k % 3], "steps": 2, "n_eval": 10, "seed": k % 3}),
        ("compare_gpt_stages", {"runs": ["builtin"], "n_eval": 5}),
        ("list_models", {}),
        ("generate_image", {"prompt": "x", "steps": 0}),  # refused by validation
    ]


async def soak(opts: argparse.Namespace) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="soak-bench-"))
    extra = dict(item.split("=", 1) for item in opts.env)
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
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **extra},
        cwd=str(ROOT),
    )
    wanted = None if opts.tools == "all" else set(opts.tools.split(","))
    done = errors = 0
    run_id = stage_id = None

    async def calls(c: Client, n: int) -> None:
        nonlocal done, errors, run_id, stage_id
        k = done
        while n > 0:
            for name, args in mix(tmp, k):
                if n == 0:
                    break
                if wanted is not None and name not in wanted:
                    continue
                if name == "sample_text":  # from the last tiny GPT trained
                    args = {**args, "run_id": run_id}
                if name == "compare_gpt_stages" and stage_id is not None:  # the last stage and its lineage
                    args = {**args, "runs": [stage_id]}
                res = await c.call_tool(name, args)
                if name == "train_tiny_gpt" and not res.is_error:
                    run_id = res.structured_content["run_id"]
                if name == "finetune_gpt" and not res.is_error:
                    stage_id = res.structured_content["run_id"]
                if res.is_error and args.get("steps") != 0:
                    errors += 1
                    print(f"unexpected error from {name}: {res.content[0].text[:300]}", file=sys.stderr)
                n -= 1
                done += 1
            k += 1

    async with Client(params, mode="legacy") as c:
        pid = server_pid(str(tmp))
        t0 = time.perf_counter()
        await calls(c, opts.warmup)
        warm, t1 = rss_kb(pid), time.perf_counter()
        await calls(c, opts.calls // 2)
        mid = rss_kb(pid)
        await calls(c, opts.calls - opts.calls // 2)
        end, t2 = rss_kb(pid), time.perf_counter()
    second = opts.calls - opts.calls // 2
    return {
        "calls_after_warmup": opts.calls,
        "warmup_calls": opts.warmup,
        "unexpected_errors": errors,
        "rss_warm_mb": round(warm / 1024, 1),
        "rss_mid_mb": round(mid / 1024, 1),
        "rss_end_mb": round(end / 1024, 1),
        "kb_per_call": round((end - warm) / max(1, opts.calls), 1),
        "kb_per_call_second_half": round((end - mid) / max(1, second), 1),
        "warmup_s": round(t1 - t0, 1),
        "soak_s": round(t2 - t1, 1),
        "calls_per_s": round(opts.calls / max(1e-9, t2 - t1), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--tools", default="all", help="comma-separated tool names, or 'all'")
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="server environment")
    opts = ap.parse_args()
    figures = asyncio.run(soak(opts))
    print(f"soak over stdio ({opts.tools}; env {opts.env or 'default'}):")
    for k, v in figures.items():
        print(f"  {k}: {v}")
    print(f"-> growth {figures['kb_per_call']} KB per call (target < 10)")


if __name__ == "__main__":
    main()
