"""Benchmark: memory of the running server with the built-in diffusion model loaded.

    python bench/bench_generate_rss.py

Starts the server as a client would (`python -m mcp_server` over stdio), calls generate_image a few times
(text-to-image, image-to-image from the first output, show_steps), then reads the server process's resident
memory (RSS) and its peak (VmHWM) from /proc. Target: under 1 GB with the model loaded.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

from mcp import Client, StdioServerParameters

ROOT = Path(__file__).resolve().parents[1]


def proc_mem(marker: str) -> dict[str, float]:
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            if marker in cmd and "mcp_server" in cmd:
                status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        else:
            if marker in cmd and "mcp_server" in cmd:
                fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
                return {k: int(fields[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM")}
    raise RuntimeError("server process not found")


async def main() -> None:
    tmp = tempfile.mkdtemp(prefix="rss-bench-")
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "mcp_server", "--output-dir", tmp, "--allow-dir", tmp, "--log-level", "WARNING"],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        cwd=str(ROOT),
    )
    async with Client(params, mode="legacy") as c:
        before = proc_mem(tmp)
        t0 = time.perf_counter()
        res = await c.call_tool(
            "generate_image", {"prompt": "a small red circle in the top left on a blue background"}
        )
        first = time.perf_counter() - t0
        uri = res.structured_content["images"][0]["uri"]
        await c.call_tool("generate_image", {"prompt": "a green square", "init_image": uri, "strength": 0.5})
        await c.call_tool(
            "generate_image", {"prompt": "a large white triangle", "show_steps": True, "num_images": 4}
        )
        after = proc_mem(tmp)
    print(f"server RSS before any generation: {before['VmRSS']:.0f} MB")
    print(
        f"server RSS with the built-in model loaded: {after['VmRSS']:.0f} MB (peak {after['VmHWM']:.0f} MB)"
    )
    print(f"first call (load + generate): {first:.2f} s")


if __name__ == "__main__":
    asyncio.run(main())
