"""Jobs over streamable HTTP (the real CLI, two bearer tokens): each client sees only its own jobs, another
client's job id reads as unknown, and fast calls are never queued behind the long jobs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import anyio
import httpx2
import pytest
from launch_support import tiny_png_data_uri
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

ROOT = Path(__file__).resolve().parents[2]
TOKENS = {"alice": "alice-token-0123456789abcdef", "bob": "bob-token-0123456789abcdefgh"}
LONG = {
    "dataset": "spiral",
    "epochs": 50_000,
    "n_samples": 1000,
    "hidden_layers": [16, 16],
    "time_budget_s": 30,
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    out = tmp_path_factory.mktemp("http-jobs")
    port = _free_port()
    argv = [sys.executable, "-m", "mcp_server", "--transport", "streamable-http", "--port", str(port)]
    for token in TOKENS.values():
        argv += ["--auth-token", token]
    proc = subprocess.Popen(
        [*argv, "--output-dir", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, proc.stderr.read().decode(errors="replace")[-3000:]
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            assert time.monotonic() < deadline, "server did not start listening"
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}/mcp"
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _client(url: str, who: str) -> Client:
    http = httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {TOKENS[who]}"}, timeout=httpx2.Timeout(30, read=60)
    )
    return Client(streamable_http_client(url, http_client=http), mode="legacy")


async def test_two_tokens_each_see_only_their_own_jobs_and_fast_calls_never_wait_behind_long_ones(server):
    async with _client(server, "alice") as alice, _client(server, "bob") as bob:
        # torch loaded first, so the fast calls below measure waiting, not the one-off import
        assert not (await alice.call_tool("tensorize_image", {"image": tiny_png_data_uri()})).is_error
        a = (await alice.call_tool("train_toy_mlp", {**LONG, "wait_s": 0})).structured_content
        b = (await bob.call_tool("train_toy_mlp", {**LONG, "seed": 1, "wait_s": 0})).structured_content
        assert a["status"] in ("queued", "running") and b["status"] == "queued"  # one heavy job at a time

        # Fast calls of both clients, at once, while the long jobs hold the CPU slot and the queue.
        fast: dict[str, float] = {}

        async def tensorize(who: str, c: Client) -> None:
            t0 = time.monotonic()
            res = await c.call_tool("tensorize_image", {"image": tiny_png_data_uri(), "normalize": "unit"})
            assert not res.is_error, res.content
            fast[who] = time.monotonic() - t0

        async with anyio.create_task_group() as tg:
            tg.start_soon(tensorize, "alice", alice)
            tg.start_soon(tensorize, "bob", bob)
        still = [
            (await c.call_tool("job_status", {"job_id": j["job_id"], "wait_s": 0})).structured_content[
                "status"
            ]
            for c, j in ((alice, a), (bob, b))
        ]
        assert still == ["running", "queued"], f"the fast calls ({fast}) waited for a long job: {still}"

        # Each client lists only its own job; the other's id reads exactly like one that never existed.
        mine = [j["job_id"] for j in (await alice.call_tool("list_jobs", {})).structured_content["jobs"]]
        theirs = [j["job_id"] for j in (await bob.call_tool("list_jobs", {})).structured_content["jobs"]]
        assert mine == [a["job_id"]] and theirs == [b["job_id"]]
        for tool, args in [("job_status", {"wait_s": 0}), ("cancel_job", {})]:
            res = await alice.call_tool(tool, {"job_id": b["job_id"], **args})
            assert res.is_error and "`job_id`" in res.content[0].text and "no such job" in res.content[0].text
        with pytest.raises(Exception, match="no such job"):
            await bob.read_resource(f"mllab://jobs/{a['job_id']}")
        listed = json.loads((await bob.read_resource("mllab://jobs")).contents[0].text)["jobs"]
        assert [j["job_id"] for j in listed] == [b["job_id"]]
        assert (await bob.call_tool("job_status", {"job_id": b["job_id"], "wait_s": 0})).structured_content[
            "status"
        ] == "queued", "alice's cancel_job must not have touched bob's job"

        for c, j in ((bob, b), (alice, a)):
            res = await c.call_tool("cancel_job", {"job_id": j["job_id"]})
            assert res.structured_content["status"] == "cancelled"
