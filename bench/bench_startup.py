"""Start-up: spawn the server, time initialize and tools/list, side by side with a bare MCPServer.

Run: python bench/bench_startup.py [--runs 7]
Target: ml-lab-mcp within 1.2x of the bare server (medians, interleaved runs in one process).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from stdio_probe import time_startup  # the script's own folder is on the path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    out = tempfile.mkdtemp(prefix="mllab-bench-")
    ours_cmd = [sys.executable, "-m", "mcp_server", "--output-dir", out, "--log-level", "WARNING"]
    bare_cmd = [sys.executable, str(Path(__file__).parent / "bare_server.py")]
    time_startup(ours_cmd)  # warm the OS file cache for both
    time_startup(bare_cmd)
    ours, bare = [], []
    n_tools = 0
    for _ in range(args.runs):  # interleaved, so machine noise hits both alike
        t = time_startup(ours_cmd)
        ours.append(t)
        n_tools = t[2]
        bare.append(time_startup(bare_cmd))
    o_init = statistics.median(t[0] for t in ours)
    o_list = statistics.median(t[1] for t in ours)
    b_init = statistics.median(t[0] for t in bare)
    b_list = statistics.median(t[1] for t in bare)
    print(f"runs={args.runs} (medians)")
    print(f"bare MCPServer (1 tool):  initialize {b_init:.3f}s  tools/list {b_list:.3f}s")
    print(f"ml-lab-mcp ({n_tools} tools):     initialize {o_init:.3f}s  tools/list {o_list:.3f}s")
    print(f"ratio initialize {o_init / b_init:.2f}x   tools/list {o_list / b_list:.2f}x   (target <= 1.2x)")


if __name__ == "__main__":
    main()
