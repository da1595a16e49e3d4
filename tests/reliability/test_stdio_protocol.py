"""Protocol abuse on the stdio transport: malformed JSON, unknown methods, odd and huge ids, a 10 MB line,
bad UTF-8, non-finite numbers. The server answers with a JSON-RPC error or drops the message, never writes
anything but JSON-RPC to stdout, and keeps serving."""

from __future__ import annotations

import json

import pytest
from rel_harness import DEMO_TOOL, STATS, make_cfg
from rel_process import RawServer, peak_rss_mb

TEN_MB = 10 * 1024 * 1024


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("protocol")
    server = RawServer(make_cfg(root), root)
    server.initialize()
    yield server
    server.close()


def still_serving(server: RawServer) -> None:
    assert server.alive(), "server died"
    assert DEMO_TOOL in server.tools()


def drain(server: RawServer, timeout: float = 30) -> list[dict]:
    """Everything the server wrote before answering a marker ping (each line must be JSON-RPC)."""
    marker = server.request("ping", {})
    out = []
    while True:
        msg = server.read(timeout=timeout)
        assert msg is not None, "server closed stdout"
        assert msg.get("jsonrpc") == "2.0", msg
        if msg.get("id") == marker and "result" in msg:
            return out
        out.append(msg)


GARBAGE = [
    b"this is not json\n",
    b'{"jsonrpc": "2.0", "id": 1, "method": \n',
    b"{}\n",
    b"[]\n",
    b"null\n",
    b"42\n",
    b'"a string"\n',
    b'{"jsonrpc": "1.0", "id": 5, "method": "tools/list"}\n',
    b'{"id": 6, "method": "tools/list"}\n',
    b'{"jsonrpc": "2.0", "id": {"nested": 1}, "method": "tools/list"}\n',
    b'{"jsonrpc": "2.0", "id": [1, 2], "method": "tools/list"}\n',
    b'{"jsonrpc": "2.0", "method": 12, "id": 7}\n',
    b"\xff\xfe\xfd not utf-8 \x80\n",
    b'{"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": "not an object"}\n',
    b'{"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": null}}\n',
    b'{"jsonrpc": "2.0", "id": 10, "method": "tools/call", "params": {"name": "reliability_demo", "arguments": [1]}}\n',
    b'{"jsonrpc": "2.0", "id": 11, "result": {}}\n',  # a response nobody asked for
    b'{"jsonrpc": "2.0", "id": 12, "error": {"code": 1, "message": "x"}}\n',
    b'{"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 999999}}\n',
    b'{"jsonrpc": "2.0", "method": "notifications/no_such_thing"}\n',
    b"\n",
    b"   \t  \n",
    b'[{"jsonrpc": "2.0", "id": 13, "method": "tools/list"}]\n',  # batches were removed from MCP
    b'{"jsonrpc": "2.0", "id": 14, "method": "tools/list"}{"jsonrpc": "2.0", "id": 15, "method": "ping"}\n',
    b'{"jsonrpc": "2.0", "id": 16, "method": "tools/call", "params": {"name": "reliability_demo", '
    b'"arguments": {"scale": NaN, "values": [Infinity, -Infinity]}}}\n',
    b'{"jsonrpc": "2.0", "id": 17, "method": "tools/call", "params": {"name": "reliability_demo", '
    b'"arguments": {"count": 1e400}}}\n',
    b'{"jsonrpc": "2.0", "id": 18, "method": "tools/call", "params": {"name": "reliability_demo", '
    b'"arguments": {"label": "\\ud800 lone surrogate"}}}\n',
    b'{"jsonrpc": "2.0", "id": 19, "method": "tools/call", "params": {"name": "reliability_demo", '
    b'"arguments": {"count": 2}, "count": 3}, "extra": true}\n',
    b"[" * 100_000 + b"\n",  # deep nesting
]


def test_garbage_lines_get_errors_or_are_dropped_and_the_server_keeps_serving(raw):
    for line in GARBAGE:
        STATS.hostile_cases += 1
        raw.send_raw(line)
        drain(raw)
        still_serving(raw)


def test_unknown_method_gets_method_not_found(raw):
    i = raw.request("no/such/method", {})
    reply = raw.wait_for(i)
    assert reply["error"]["code"] == -32601
    still_serving(raw)


@pytest.mark.parametrize(
    "id_", [10**100, -(2**63), 2**64, 1.5, "x" * 100_000, "", "\u202e\U0001f600", 0], ids=repr
)
def test_odd_and_huge_ids_are_answered_with_that_id_or_refused(raw, id_):
    STATS.hostile_cases += 1
    raw.send({"jsonrpc": "2.0", "id": id_, "method": "tools/list"})
    replies = drain(raw)
    for r in replies:
        if "result" in r:
            assert r["id"] == id_, "a result must echo the request id exactly"
    still_serving(raw)


def test_a_10_mb_line_is_refused_or_answered_and_the_server_keeps_serving(raw):
    STATS.hostile_cases += 2
    big_arg = {"label": "x" * TEN_MB}
    i = raw.request("tools/call", {"name": DEMO_TOOL, "arguments": big_arg})
    reply = raw.wait_for(i, timeout=60)
    assert "error" in reply or reply["result"]["isError"], "a 10 MB label is over the schema's maxLength"
    assert len(json.dumps(reply)) < 100_000, "the error echoes the 10 MB argument back"
    raw.send_raw(b"{" + b"x" * TEN_MB + b"\n")  # 10 MB of garbage
    drain(raw)
    still_serving(raw)
    STATS.record_peak("stdio protocol abuse", peak_rss_mb(raw.ps))


def test_a_request_split_across_writes_is_still_answered(raw):
    msg = json.dumps({"jsonrpc": "2.0", "id": 77, "method": "tools/list"}).encode() + b"\n"
    for k in range(0, len(msg), 7):
        raw.send_raw(msg[k : k + 7])
    assert "result" in raw.wait_for(77)


def test_many_pipelined_requests_are_all_answered(raw):
    ids = [raw.request("tools/call", {"name": DEMO_TOOL, "arguments": {"seed": k}}) for k in range(200)]
    pending = set(ids)
    while pending:
        msg = raw.read(timeout=60)
        assert msg is not None, "server closed stdout"
        if msg.get("id") in pending:
            assert not msg["result"]["isError"], msg
            pending.discard(msg["id"])
    still_serving(raw)
