"""Spawn an MCP server over stdio and time start -> initialize reply -> tools/list reply (raw JSON-RPC)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time


def time_startup(
    cmd: list[str], env: dict[str, str] | None = None, timeout: float = 60.0
) -> tuple[float, float, int]:
    """Return (seconds to initialize reply, seconds to tools/list reply, number of tools)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    assert proc.stdin and proc.stdout

    def send(msg: dict) -> None:
        proc.stdin.write((json.dumps(msg) + "\n").encode())
        proc.stdin.flush()

    def reply(want_id: int) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"server exited early: {cmd}")
            msg = json.loads(line)
            if msg.get("id") == want_id:
                return msg
        raise TimeoutError(cmd)

    try:
        send(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "bench", "version": "0"},
                },
            }
        )
        reply(1)
        t_init = time.perf_counter() - t0
        send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        send({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
        tools = reply(2)["result"]["tools"]
        t_list = time.perf_counter() - t0
        return t_init, t_list, len(tools)
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    print(time_startup(sys.argv[1:]))
