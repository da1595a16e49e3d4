"""Start-up time to the answer of `initialize`, per launcher, against the direct start measured in the
same run (`python -m mcp_server`). Warm caches: each launcher runs once before timing.

    python -m bench.bench_launch [--repeat 5] [--wheel dist/ml_lab_mcp-*.whl] [--image localhost/ml-lab-mcp:ci]

uvx and npx need uv and npm; the wheel and npm tarball are built here when not given. The container
row needs podman as root and a built image (.ci/container-test builds one).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.launch.launch_support import initialize_over_pipe, server_env

ROOT = Path(__file__).resolve().parents[1]


def time_initialize(argv: list[str], env: dict[str, str], cwd: Path | None = None) -> float:
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=cwd
    )
    try:
        answer = initialize_over_pipe(proc, timeout=300)
        elapsed = time.perf_counter() - t0
        assert "result" in answer, answer
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
    return elapsed


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--wheel", type=Path)
    p.add_argument("--image", default=None)
    ns = p.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-launch-"))
    env = server_env({"ML_LAB_OUTPUT_DIR": str(tmp / "out")})
    rows: list[tuple[str, list[str], Path | None]] = [
        ("python -m mcp_server", [sys.executable, "-m", "mcp_server"], None)
    ]

    uvx = shutil.which("uvx") or shutil.which("uvx", path=str(Path(sys.executable).parent))
    if uvx:
        wheel = ns.wheel
        if wheel is None:
            subprocess.run(
                [str(Path(uvx).with_name("uv")), "build", "--wheel", "--out-dir", str(tmp), str(ROOT)],
                check=True,
                capture_output=True,
            )
            wheel = next(tmp.glob("*.whl"))
        links = subprocess.run(
            [sys.executable, "-m", "pip", "config", "get", "global.find-links"],
            capture_output=True,
            text=True,
        ).stdout.split()
        uv_args = ["--python", sys.executable, "--with", f"torch=={importlib.metadata.version('torch')}"]
        for d in links:
            uv_args += ["--find-links", d]
        rows.append(("uvx --from wheel", [uvx, *uv_args, "--from", str(wheel), "ml-lab-mcp"], None))
        if shutil.which("npm"):
            subprocess.run(
                ["npm", "pack", "--pack-destination", str(tmp), str(ROOT / "npm")],
                check=True,
                capture_output=True,
            )
            tarball = next(tmp.glob("ml-lab-mcp-*.tgz"))
            env.update(
                ML_LAB_UVX=uvx,
                ML_LAB_UVX_FROM=str(wheel),
                ML_LAB_UVX_ARGS=" ".join(uv_args),
                npm_config_cache=str(tmp / "npm-cache"),
            )
            rows.append(("npx ./tarball (uvx)", ["npx", "--yes", f"./{tarball.name}"], tmp))
    if ns.image and shutil.which("podman"):
        rows.append(
            (
                "podman run -i (image)",
                [
                    "podman",
                    "--cgroup-manager=cgroupfs",
                    "--runtime",
                    "runc",
                    "run",
                    "--ulimit",
                    "nofile=1024:1024",
                    "--ulimit",
                    "nproc=1024:1024",
                    "--rm",
                    "-i",
                    ns.image,
                ],
                None,
            )
        )

    base = None
    print(f"{'launcher':28s} {'median s':>9s} {'min s':>7s} {'x direct':>9s}")
    for name, argv, cwd in rows:
        time_initialize(argv, env, cwd)  # warm-up
        times = [time_initialize(argv, env, cwd) for _ in range(ns.repeat)]
        med = statistics.median(times)
        base = base or med
        print(f"{name:28s} {med:9.2f} {min(times):7.2f} {med / base:9.2f}")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
