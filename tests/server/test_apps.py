"""MCP Apps through a real MCP client: tools carry their view, views are mcp-app resources, the extension is
negotiated, and a tool's result is the same whether or not the client negotiated Apps. Plus /lab's page."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from mcp import Client
from mcp.client.extension import advertise
from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID, client_supports_apps
from mcp.server.mcpserver import Context

from mcp_server import apps
from mcp_server.http import BearerTokenMiddleware
from mcp_server.server import build_server
from tools.config import LabConfig

ROOT = Path(__file__).resolve().parents[2]
WITH_APPS = [advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})]
SMALL = {"dataset": "xor", "hidden_layers": [4], "epochs": 8, "n_samples": 60}
# what differs between two calls with the same arguments: the run's name, its files, and the clock
VOLATILE = {
    "run_id",
    "picture_path",
    "picture_uri",
    "metrics_path",
    "metrics_uri",
    "weights_path",
    "weights_uri",
}


@pytest.fixture
def server(tmp_path):
    mcp = build_server(LabConfig.create(tmp_path / "out"))

    def apps_negotiated(ctx: Context) -> bool:
        return client_supports_apps(ctx)

    mcp.add_tool(apps_negotiated)  # a probe: what the server sees of the client's capabilities
    return mcp


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_tools_with_views_carry_their_ui_resource_and_the_server_advertises_apps(server, mode):
    async with Client(server, mode=mode, extensions=WITH_APPS) as c:
        if (
            mode == "auto"
        ):  # capabilities.extensions is a 2026-07-28 field; the SDK leaves it out of older eras
            assert EXTENSION_ID in (c.server_capabilities.extensions or {})
        tools = {t.name: t for t in (await c.list_tools()).tools}
        for view in apps.VIEWS:
            for name in view.tools:
                assert tools[name].meta == {"ui": {"resourceUri": view.uri}}
        assert tools["sample_text"].meta == tools["train_tiny_gpt"].meta
        assert "ui" not in (tools["explain_concept"].meta or {})


async def test_views_are_self_contained_mcp_app_resources(server):
    async with Client(server, mode="legacy", extensions=WITH_APPS) as c:
        listed = {str(r.uri): r for r in (await c.list_resources()).resources}
        for view in apps.VIEWS:
            assert listed[view.uri].mime_type == APP_MIME_TYPE
            (content,) = (await c.read_resource(view.uri)).contents
            assert content.mime_type == APP_MIME_TYPE
            html = content.text
            # one document, no network: a CSP that allows nothing outside the page, and no external URL at all
            assert html.startswith("<!doctype html>") and "default-src 'none'" in html
            assert "<script src" not in html and "<link" not in html
            assert "https://" not in html.split("<script>")[0]


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_apps_negotiation_is_seen_by_the_server_only_when_the_client_offers_it(server, mode):
    async with Client(server, mode=mode, extensions=WITH_APPS) as c:
        assert (await c.call_tool("apps_negotiated", {})).structured_content == {"result": True}
    async with Client(server, mode=mode) as c:
        assert (await c.call_tool("apps_negotiated", {})).structured_content == {"result": False}


async def test_results_are_identical_with_and_without_apps(server):
    results = []
    for extensions in (WITH_APPS, None):
        async with Client(server, mode="legacy", extensions=extensions) as c:
            results.append(await c.call_tool("train_toy_mlp", SMALL))
    with_apps, without = results
    assert not with_apps.is_error and not without.is_error
    types = [b.type for b in with_apps.content]
    assert types == [b.type for b in without.content] and "image" in types
    a, b = with_apps.structured_content, without.structured_content
    for key in VOLATILE:
        a.pop(key), b.pop(key)
    for run in a["runs"] + b["runs"]:
        run.pop("wall_time_s"), run.pop("epochs_per_s")
    assert a == b and a["runs"][0]["boundary"]  # the same numbers, snapshots included
    images = [[b.data for b in r.content if b.type == "image"] for r in results]
    assert images[0] == images[1]  # and the same picture


TINY_GPT = {"corpus": "names", "n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 16, "batch_size": 4,
            "max_steps": 4, "eval_interval": 2, "eval_iters": 1, "sample_tokens": 8}  # fmt: skip
GPT_VOLATILE = {"run_path", "load_code", "wall_time_s", "tokens_per_s"}  # where and how fast, not what


async def test_tiny_gpt_results_are_identical_with_and_without_apps(server):
    """What the language view reads (curves, samples, attention weights, sampled tokens) is every client's."""
    runs, samples = [], []
    for extensions in (WITH_APPS, None):
        async with Client(server, mode="legacy", extensions=extensions) as c:
            runs.append(await c.call_tool("train_tiny_gpt", TINY_GPT))
            assert not runs[-1].is_error, runs[-1].content[0]
            run_id = runs[-1].structured_content["run_id"]
            samples.append(
                await c.call_tool("sample_text", {"run_id": run_id, "temperature": 0.7, "max_new_tokens": 12})
            )
    for pair in (runs, samples):
        a, b = (dict(r.structured_content) for r in pair)
        assert [x.type for x in pair[0].content] == [x.type for x in pair[1].content]
        for key in VOLATILE | GPT_VOLATILE | {"model", "attention"}:
            a.pop(key, None), b.pop(key, None)
        assert a == b
    att = [r.structured_content["attention"] for r in runs]
    assert att[0]["weights_b64"] == att[1]["weights_b64"] and att[0]["tokens"] == att[1]["tokens"]
    assert len(att[0]["weights_b64"]) == 4 * -(
        -2 * (16 * 17 // 2) // 3
    )  # 1 layer x 2 heads x 136 bytes, base64
    assert (
        samples[0].structured_content["tokens"]
        and samples[0].structured_content["settings"]["temperature"] == 0.7
    )


# ---- the bundles are built from the committed sources


def _sources_hash() -> str:
    """The hash views/build.mjs records in each bundle: sha256 over sorted (path, content) of every source."""
    base = ROOT / "views"
    files = [
        p.relative_to(base).as_posix() for d in ("src", "host") for p in (base / d).rglob("*") if p.is_file()
    ]
    files += ["build.mjs", "package.json", "package-lock.json"]
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0" + (base / name).read_bytes() + b"\0")
    return h.hexdigest()


def test_every_bundle_is_built_from_the_current_sources():
    expected = f'<meta name="ml-lab-sources" content="{_sources_hash()}">'
    for name in [v.file for v in apps.VIEWS] + ["lab.html"]:
        html = apps.read_view(name)
        assert expected in html, (
            f"mcp_server/views/{name} is stale: run `cd views && npm ci && npm run build`"
        )


def test_every_view_source_has_a_registered_view():
    sources = {p.stem for p in (ROOT / "views" / "src").glob("*.html")}
    assert sources == {Path(v.file).stem for v in apps.VIEWS}


# ---- /lab


async def _get(app, path: str, method: str = "GET", headers: list | None = None) -> tuple[int, dict, bytes]:
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "headers": headers or [], "query_string": b""}
    await app(scope, receive, send)
    start = sent[0]
    return start["status"], dict(start["headers"]), b"".join(m.get("body", b"") for m in sent[1:])


async def _inner(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"mcp"})


async def test_lab_page_is_served_without_the_token_but_mcp_still_needs_it():
    app = apps.LabPage(BearerTokenMiddleware(_inner, "a-token-of-sixteen-chars"))
    status, headers, body = await _get(app, "/lab")
    assert status == 200 and headers[b"content-type"].startswith(b"text/html")
    assert body == apps.read_view("lab.html").encode() and b"/mcp" in body
    assert (await _get(app, "/mcp"))[0] == 401
    assert (await _get(app, "/mcp", headers=[(b"authorization", b"Bearer a-token-of-sixteen-chars")]))[
        2
    ] == b"mcp"
    assert (await _get(app, "/lab", method="POST"))[0] == 405
    assert (await _get(app, "/lab/x"))[0] == 401  # only the page itself is public
