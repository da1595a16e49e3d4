"""Benchmark: what a Ray job costs a short call, and what Ray workers give eight trainings at once.

1. Overhead: the same short train_toy_mlp call (30 epochs, 200 points) through a real MCP client (in memory) on a
   server with `--jobs local` and one with `--jobs ray` (a local Ray instance in this process, 2 CPUs), calls
   alternating, median of `--repeats` each; the difference is what Ray adds (hand-off to the board, the task, the
   result read back from the shared folder).
2. Throughput: eight trainings (the playground default, 300 epochs) submitted at once and waited for, on Ray with 1
   and with 2 worker CPUs (the Ray instance restarted with num_cpus=1, then 2), against the local backend with one
   heavy slot (today's default: one after another) measured in the same run.

Ray runs torch with one thread per task (OMP_NUM_THREADS = the task's CPUs); `--threads 1` gives the local backend
the same, so that the comparison is of the backends, not of thread counts.

    python bench/bench_ray_jobs.py [--repeats 7] [--jobs 8] [--epochs 300] [--threads 1]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import ray
from mcp import Client

from mcp_server.server import build_server
from tools import toy_mlp
from tools.config import JobSettings, LabConfig
from tools.jobs import make_runner

SHORT = {"dataset": "circle", "epochs": 30, "n_samples": 200, "hidden_layers": [8], "wait_s": 55}


def start_ray(num_cpus: int) -> str:
    ray.shutdown()
    ray.init(num_cpus=num_cpus, include_dashboard=False, namespace="ml-lab-mcp", log_to_driver=False)
    return ray.get_runtime_context().gcs_address


async def overhead(tmp: Path, repeats: int) -> tuple[float, float]:
    local = LabConfig.create(tmp / "local")
    on_ray = LabConfig.create(tmp / "ray", jobs=JobSettings(backend="ray"))
    times: dict[str, list[float]] = {"local": [], "ray": []}
    async with (
        Client(build_server(local), mode="legacy") as lc,
        Client(build_server(on_ray), mode="legacy") as rc,
    ):
        for i in range(repeats + 1):
            for name, c in (("local", lc), ("ray", rc)):
                t = time.perf_counter()
                res = await c.call_tool("train_toy_mlp", SHORT)
                assert not res.is_error and "job_id" not in res.structured_content, res.content[0]
                if i:  # the first round warms up torch here and a Ray worker there
                    times[name].append(time.perf_counter() - t)
    return statistics.median(times["local"]), statistics.median(times["ray"])


def throughput(folder: Path, settings: JobSettings, n_jobs: int, training: toy_mlp.TrainToyMlpInput) -> float:
    """Jobs per second for `n_jobs` trainings submitted at once and all waited for."""
    cfg = LabConfig.create(folder, jobs=settings)
    runner = make_runner(folder / "jobs", settings)
    tiny = toy_mlp.TrainToyMlpInput(epochs=5, n_samples=100)
    warm = [runner.submit("train_toy_mlp", {}, lambda rep: toy_mlp.run(tiny, cfg, rep)) for _ in range(2)]
    assert all(w.wait_finished(120) for w in warm)  # imports and Ray workers warmed outside the timing
    t = time.perf_counter()
    jobs = [
        runner.submit("train_toy_mlp", {}, lambda rep: toy_mlp.run(training, cfg, rep)) for _ in range(n_jobs)
    ]
    for job in jobs:
        assert job.wait_finished(600) and job.record.status == "completed", job.record
    return n_jobs / (time.perf_counter() - t)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--jobs", type=int, default=8)
    p.add_argument(
        "--epochs", type=int, default=300, help="epochs of each training (300: the playground default)"
    )
    p.add_argument(
        "--threads", type=int, default=0, help="torch threads of the local backend (0: torch's default)"
    )
    args = p.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        start_ray(2)
        local_s, ray_s = asyncio.run(overhead(tmp, args.repeats))
        print(f"short call (median of {args.repeats}): local {local_s * 1000:.0f} ms, ray {ray_s * 1000:.0f} ms, "
              f"Ray adds {(ray_s - local_s) * 1000:.0f} ms (ratio {ray_s / local_s:.2f})")  # fmt: skip
        training = toy_mlp.TrainToyMlpInput(seed=0, epochs=args.epochs)
        ref = throughput(tmp / "t-local", JobSettings(max_heavy=1), args.jobs, training)
        rates = {}
        for cpus in (1, 2):
            start_ray(cpus)
            rates[cpus] = throughput(tmp / f"t-ray{cpus}", JobSettings(backend="ray"), args.jobs, training)
        ray.shutdown()
    print(f"{args.jobs} trainings at once ({args.epochs} epochs each), jobs/s:")
    print(f"  local, one heavy slot (reference, {args.threads or 'default'} torch threads): {ref:.3f}")
    for cpus, rate in rates.items():
        print(f"  ray, {cpus} worker CPU(s):          {rate:.3f} ({rate / ref:.2f}x local)")
    print(f"  ray 2 workers / 1 worker: {rates[2] / rates[1]:.2f}x")


if __name__ == "__main__":
    main()
