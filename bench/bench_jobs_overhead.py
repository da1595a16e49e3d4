"""Benchmark: what running a long tool as a job costs a short call, and how fast cancel_job stops one.

Two servers in this process, each behind a real MCP client (in memory): one registers train_toy_mlp as today's
direct call (`long_running=False`), the other as a job (`long_running=True`: the call waits up to wait_s for its
job). The same short calls alternate between them, the median of each is kept, and the ratio is printed (target:
the job path at most 5% slower). Then cancel latency: a long training is started as a job, cancel_job is timed
until it answers `cancelled` (the job's thread has stopped by then, or it is marked cancelled at 1 s).

    python bench/bench_jobs_overhead.py [--repeats 15] [--threads 1]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time

from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

from mcp_server.adapter import register_tool
from tools import toy_mlp
from tools.config import LabConfig

CASES = {
    "tiny (30 epochs, 200 points)": {
        "dataset": "circle",
        "epochs": 30,
        "n_samples": 200,
        "hidden_layers": [8],
    },
    "playground default (300 epochs)": {},
}
LONG = {"epochs": 50_000, "n_samples": 1000, "hidden_layers": [16, 16], "time_budget_s": 60}


def server(cfg: LabConfig, long_running: bool) -> MCPServer:
    mcp = MCPServer(name="bench")
    register_tool(
        mcp, cfg, name="train_toy_mlp", title="t", description="d", input_model=toy_mlp.TrainToyMlpInput,
        result_model=toy_mlp.TrainToyMlpResult, run=toy_mlp.run, annotations=ToolAnnotations(),
        progress_interval_s=0.2, long_running=long_running,
    )  # fmt: skip
    if long_running:
        from mcp_server import tool_jobs

        tool_jobs.register(mcp, cfg)
    return mcp


async def timed(c: Client, args: dict) -> float:
    t = time.perf_counter()
    res = await c.call_tool("train_toy_mlp", args)
    assert not res.is_error and "job_id" not in res.structured_content, res.content[0]
    return time.perf_counter() - t


async def main(repeats: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        cfg = LabConfig.create(d)
        async with (
            Client(server(cfg, False), mode="legacy") as direct,
            Client(server(cfg, True), mode="legacy") as jobs,
        ):
            await timed(direct, CASES["tiny (30 epochs, 200 points)"])  # warm: torch, matplotlib
            await timed(jobs, CASES["tiny (30 epochs, 200 points)"])
            print(f"{'call':34s} {'direct (today)':>15s} {'as a job':>10s} {'ratio':>7s}")
            for name, args in CASES.items():
                a, b = [], []
                for i in range(repeats):  # alternate the order so drift on a shared machine hits both alike
                    first, second = (direct, jobs) if i % 2 == 0 else (jobs, direct)
                    t1, t2 = await timed(first, args), await timed(second, args)
                    (a if first is direct else b).append(t1)
                    (b if first is direct else a).append(t2)
                ma, mb = statistics.median(a), statistics.median(b)
                print(f"{name:34s} {ma * 1000:12.1f} ms {mb * 1000:7.1f} ms {mb / ma:7.3f}")

            latencies = []
            for seed in range(5):
                handle = (
                    await jobs.call_tool("train_toy_mlp", {**LONG, "seed": seed, "wait_s": 0})
                ).structured_content
                while True:  # until it trains (has a partial result)
                    view = await jobs.call_tool("job_status", {"job_id": handle["job_id"], "wait_s": 0.2})
                    if view.structured_content["partial"]:
                        break
                t = time.perf_counter()
                res = await jobs.call_tool("cancel_job", {"job_id": handle["job_id"]})
                latencies.append(time.perf_counter() - t)
                assert res.structured_content["status"] == "cancelled"
            print(
                f"cancel_job on a running training: median {statistics.median(latencies) * 1000:.0f} ms, "
                f"max {max(latencies) * 1000:.0f} ms over {len(latencies)}"
            )


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ns = p.parse_args()
    if ns.threads:
        import torch

        torch.set_num_threads(ns.threads)
    asyncio.run(main(ns.repeats))
