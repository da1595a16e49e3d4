"""The reliability harness, part two: the stdio server in a subprocess (through a real client, or raw JSON-RPC
lines with its pid) and the memory and CPU of a process."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
from anyio.from_thread import start_blocking_portal
from mcp import Client, StdioServerParameters
from rel_harness import HERE, REPO, SERVE_SCRIPT, SyncClient, harness_registrars, limit_flags

from tools.config import LabConfig

# ---------------------------------------------------------------- the stdio server in a subprocess


def server_env(root: Path, registrars: tuple[str, ...] | None = None) -> dict[str, str]:
    """Environment of a subprocess server: its HOME, caches and TMPDIR inside `root` (so writes can be seen)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ML_LAB_")}
    sandbox = {
        "HOME": root / "home",
        "TMPDIR": root / "tmp",
        "XDG_CACHE_HOME": root / "cache",
        "MPLCONFIGDIR": root / "cache" / "matplotlib",
    }
    for p in sandbox.values():
        p.mkdir(parents=True, exist_ok=True)
    env.update({k: str(v) for k, v in sandbox.items()})
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["ML_LAB_RELIABILITY_REGISTRARS"] = ",".join(registrars or harness_registrars())
    env["PYTHONUNBUFFERED"] = "1"
    # Hugging Face libraries must not reach for the network from a test.
    env["HF_HUB_OFFLINE"] = "1"
    env["TRANSFORMERS_OFFLINE"] = "1"
    return env


def server_argv(cfg: LabConfig, extra: list[str] | None = None) -> list[str]:
    argv = [sys.executable, str(SERVE_SCRIPT), "--output-dir", str(cfg.output_dir), "--log-level", "WARNING"]
    for d in cfg.allowed_dirs:
        if d != cfg.output_dir:
            argv += ["--allow-dir", str(d)]
    return argv + limit_flags(cfg.limits) + (extra or [])


@contextlib.contextmanager
def stdio_client(cfg: LabConfig, root: Path, mode: str = "legacy", registrars: tuple[str, ...] | None = None):
    """A real Client over stdio to a subprocess server; yields (SyncClient, psutil.Process)."""
    argv = server_argv(cfg)
    params = StdioServerParameters(
        command=argv[0], args=argv[1:], env=server_env(root, registrars), cwd=str(root / "home")
    )
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(Client(params, mode=mode)) as client,
    ):
        new = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
        proc = next(p for p in new if str(SERVE_SCRIPT) in " ".join(p.cmdline()))
        yield SyncClient(portal, client), proc


class RawServer:
    """The stdio server as a bare subprocess: write JSON-RPC lines, read replies (for protocol abuse)."""

    def __init__(self, cfg: LabConfig, root: Path, registrars: tuple[str, ...] | None = None) -> None:
        self.proc = subprocess.Popen(
            server_argv(cfg),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(root / "server-stderr.log", "ab"),  # noqa: SIM115
            env=server_env(root, registrars),
            cwd=str(root / "home"),
        )
        self.ps = psutil.Process(self.proc.pid)
        self.lines: queue.Queue[bytes] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._next_id = 1000

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(b"")  # EOF

    def send_raw(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send(self, message: dict) -> None:
        self.send_raw(json.dumps(message).encode() + b"\n")

    def request(self, method: str, params: dict | None = None, id: Any = None) -> Any:
        if id is None:
            self._next_id += 1
            id = self._next_id
        msg: dict[str, Any] = {"jsonrpc": "2.0", "id": id, "method": method}
        if params is not None:
            msg["params"] = params
        self.send(msg)
        return id

    def read(self, timeout: float = 10.0) -> dict | None:
        """The next message from the server (None on EOF); fails on a line that is not JSON."""
        line = self.lines.get(timeout=timeout)
        if line == b"":
            return None
        return json.loads(line)

    def wait_for(self, id: Any, timeout: float = 30.0) -> dict:
        """The response to request `id`, skipping notifications and other responses."""
        deadline = time.monotonic() + timeout
        while True:
            msg = self.read(timeout=max(0.01, deadline - time.monotonic()))
            assert msg is not None, "server closed stdout"
            if msg.get("id") == id and ("result" in msg or "error" in msg):
                return msg

    def initialize(self) -> dict:
        i = self.request(
            "initialize",
            {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "reliability", "version": "0"},
            },
        )
        reply = self.wait_for(i)
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return reply

    def tools(self) -> list[str]:
        reply = self.wait_for(self.request("tools/list", {}))
        return [t["name"] for t in reply["result"]["tools"]]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(Exception):
                self.proc.stdin.close()  # type: ignore[union-attr]
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


# ---------------------------------------------------------------- memory and CPU of a process


def peak_rss_mb(proc: psutil.Process) -> float:
    """The process's high-water RSS (VmHWM on Linux; current RSS elsewhere)."""
    try:
        with open(f"/proc/{proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return proc.memory_info().rss / 2**20


def rss_mb(proc: psutil.Process) -> float:
    return proc.memory_info().rss / 2**20


def wait_cpu_idle(
    proc: psutil.Process, timeout: float, window: float = 0.1, busy_share: float = 0.2
) -> float | None:
    """Seconds until the process uses under `busy_share` of one core over a `window`, or None."""
    t0 = time.monotonic()
    last = sum(proc.cpu_times()[:2])
    while time.monotonic() - t0 < timeout:
        time.sleep(window)
        now = sum(proc.cpu_times()[:2])
        if now - last < busy_share * window:
            return time.monotonic() - t0 - window
        last = now
    return None
