"""Streamable HTTP: the bearer token on every request, refusal off loopback without one, stateless
mode, and two clients at once each getting their own progress and results.

The servers here run the real CLI's HTTP path (`run_http`) in a subprocess, holding a test tool
(`count_slowly`, in launch_support.py) so that progress is deterministic and fast.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from mcp_server.http import BearerTokenMiddleware, check_bind, is_loopback

SUPPORT = Path(__file__).with_name("launch_support.py")
TOKEN = "s3cret-token-for-tests-0123456789"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"server exited early: {proc.stderr.read().decode(errors='replace')[-3000:]}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("server did not start listening")


def _start(tmp_path: Path, *flags: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, str(SUPPORT), "--serve-http", str(tmp_path), "--", "--port", str(port), *flags],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _wait_listening(port, proc)
    return proc, f"http://127.0.0.1:{port}/mcp"


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def token_server(tmp_path_factory):
    proc, url = _start(tmp_path_factory.mktemp("http"), "--auth-token", TOKEN)
    yield url
    _stop(proc)


@pytest.fixture(scope="module")
def stateless_server(tmp_path_factory):
    proc, url = _start(tmp_path_factory.mktemp("http-stateless"), "--auth-token", TOKEN, "--stateless")
    yield url
    _stop(proc)


def _post_initialize(url: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    body = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "0"},
            },
        }
    ).encode()
    req = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            **headers,
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def _client(url: str, token: str | None = TOKEN, mode: str = "auto") -> Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=60))
    return Client(streamable_http_client(url, http_client=http), mode=mode)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": "Bearer "},
    ],
    ids=["no-header", "wrong-token", "wrong-scheme", "token-plus-one-char", "empty-bearer"],
)
def test_request_without_the_right_token_is_refused_with_401(token_server, headers):
    status, resp_headers, body = _post_initialize(token_server, headers)
    assert status == 401
    assert resp_headers.get("www-authenticate", resp_headers.get("WWW-Authenticate", "")).startswith("Bearer")
    assert json.loads(body)["error"]["message"].startswith("Unauthorized")


def test_every_request_is_checked_not_only_the_first(token_server):
    # A valid session id does not let a request through without the token.
    status, headers, _ = _post_initialize(token_server, {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200
    session = {k.lower(): v for k, v in headers.items()}.get("mcp-session-id")
    assert session
    req = urllib.request.Request(
        token_server,
        data=json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}).encode(),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "Mcp-Session-Id": session,
        },
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 401
    get = urllib.request.Request(token_server, method="GET", headers={"Mcp-Session-Id": session})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(get, timeout=10)
    assert err.value.code == 401


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_client_with_the_token_lists_and_calls_tools(token_server, mode):
    async with _client(token_server, mode=mode) as client:
        tools = await client.list_tools()
        assert [t.name for t in tools.tools] == ["count_slowly"]
        result = await client.call_tool("count_slowly", {"label": "x", "n": 3, "delay_s": 0})
        assert not result.is_error
        assert result.structured_content == {"label": "x", "total": 6}


async def _count_with_progress(url: str, label: str, n: int, mode: str) -> tuple[dict, list[tuple]]:
    seen: list[tuple] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async with _client(url, mode=mode) as client:
        result = await client.call_tool(
            "count_slowly", {"label": label, "n": n, "delay_s": 0.03}, progress_callback=on_progress
        )
    assert not result.is_error, result
    return result.structured_content, seen


@pytest.mark.parametrize("server", ["token_server", "stateless_server"])
@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_two_clients_at_once_each_get_their_own_progress_and_results(server, mode, request):
    url = request.getfixturevalue(server)
    out: dict[str, tuple] = {}

    async def one(label: str, n: int) -> None:
        out[label] = await _count_with_progress(url, label, n, mode)

    async with anyio.create_task_group() as tg:
        tg.start_soon(one, "alpha", 12)
        tg.start_soon(one, "beta", 7)

    for label, n in (("alpha", 12), ("beta", 7)):
        result, progress = out[label]
        assert result == {"label": label, "total": n * (n + 1) // 2}
        assert [p[0] for p in progress] == [float(i) for i in range(1, n + 1)]
        assert {p[1] for p in progress} == {float(n)}
        assert all(p[2] == f"{label} step {i}" for i, p in enumerate(progress, start=1)), progress


def test_stateless_mode_issues_no_session_id(stateless_server):
    status, headers, _ = _post_initialize(stateless_server, {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200
    assert "mcp-session-id" not in {k.lower() for k in headers}


def test_responses_stream_as_sse_so_progress_can_reach_the_client(token_server):
    status, headers, body = _post_initialize(token_server, {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200
    assert {k.lower(): v for k, v in headers.items()}["content-type"].startswith("text/event-stream")
    assert b"data:" in body


def test_binding_off_loopback_without_a_token_is_refused_before_start(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "mcp_server", "--transport", "streamable-http", "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "ML_LAB_OUTPUT_DIR": str(tmp_path)},
    )
    assert proc.returncode == 2
    assert "requires a bearer token" in proc.stderr
    assert proc.stdout == ""


def test_bind_rules():
    assert check_bind("127.0.0.1", None) is None
    assert check_bind("::1", None) is None
    assert check_bind("localhost", None) is None
    assert "requires a bearer token" in check_bind("0.0.0.0", None)
    assert "requires a bearer token" in check_bind("192.168.1.5", "")
    assert check_bind("0.0.0.0", TOKEN) is None
    assert check_bind("127.0.0.1", "   ") is None
    assert "requires a bearer token" in check_bind("10.0.0.1", "   ")
    assert is_loopback("127.8.9.10") and is_loopback("[::1]")
    assert not is_loopback("example.com")


def test_middleware_accepts_only_a_single_exact_bearer_header():
    mw = BearerTokenMiddleware(app=None, token=TOKEN)  # type: ignore[arg-type]

    def scope(*values: bytes) -> dict:
        return {"type": "http", "headers": [(b"authorization", v) for v in values]}

    assert mw.authorized(scope(b"Bearer " + TOKEN.encode()))
    assert mw.authorized(scope(b"bearer " + TOKEN.encode()))
    assert not mw.authorized(scope())
    assert not mw.authorized(scope(b"Bearer " + TOKEN.encode(), b"Bearer " + TOKEN.encode()))
    assert not mw.authorized(scope(b"Bearer " + TOKEN[:-1].encode()))
    assert not mw.authorized(scope(TOKEN.encode()))
    with pytest.raises(ValueError):
        BearerTokenMiddleware(app=None, token="")  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def real_server(tmp_path_factory):
    """The real CLI with every tool: `python -m mcp_server --transport streamable-http --auth-token ...`."""
    out = tmp_path_factory.mktemp("http-real")
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mcp_server", "--transport", "streamable-http", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "ML_LAB_AUTH_TOKEN": TOKEN, "ML_LAB_OUTPUT_DIR": str(out)},
    )
    _wait_listening(port, proc)
    yield f"http://127.0.0.1:{port}/mcp"
    _stop(proc)


async def test_two_clients_training_at_once_over_the_real_cli_each_get_their_own_progress(real_server):
    out: dict[int, tuple] = {}

    async def train(epochs: int) -> None:
        seen: list[tuple] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            seen.append((progress, total, message))

        async with _client(real_server) as client:
            result = await client.call_tool(
                "train_toy_mlp",
                {"dataset": "circle", "epochs": epochs, "n_samples": 100, "seed": epochs},
                progress_callback=on_progress,
            )
        out[epochs] = (result, seen)

    async with anyio.create_task_group() as tg:
        tg.start_soon(train, 30)
        tg.start_soon(train, 45)

    for epochs, (result, seen) in out.items():
        assert not result.is_error, result.content
        assert seen, "no progress reached the client"
        assert {total for _, total, _ in seen} == {float(epochs)}, seen
        assert seen[-1][0] == float(epochs)
