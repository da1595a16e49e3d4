"""Streamable HTTP transport.

Binds 127.0.0.1 by default. Any other bind address requires a bearer token (`--auth-token` or env
ML_LAB_AUTH_TOKEN), which is then checked on every request by a plain ASGI middleware (constant-time
compare; 401 without it). Several tokens may be given (repeat `--auth-token`, or comma-separate them in the
env variable), one per client: each client's jobs are visible to its own token only (mcp_server/jobs.py). Responses stream as server-sent events, never JSON-only, so progress
notifications reach the client. `--stateless` runs without sessions, for replicas behind a load balancer.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import ipaddress
import json
import logging
import sys
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from mcp.server.mcpserver import MCPServer

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MCP_PATH = "/mcp"
MIN_TOKEN_CHARS = 16

log = logging.getLogger("ml_lab_mcp.http")


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, 'localhost')."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _digest(value: bytes) -> bytes:
    # Comparing fixed-length digests keeps the compare constant-time and hides the token's length.
    return hashlib.sha256(value).digest()


class BearerTokenMiddleware:
    """Refuse every HTTP request whose `Authorization` header is not `Bearer <token>` (401).

    Pure ASGI (no response buffering), so streamed SSE responses pass through untouched.
    Lifespan events pass through so the session manager starts and stops normally.
    """

    def __init__(self, app: ASGIApp, token: str | Sequence[str]) -> None:
        tokens = [token] if isinstance(token, str) else list(token)
        if not tokens or not all(tokens):
            raise ValueError("BearerTokenMiddleware needs non-empty tokens")
        self.app = app
        self._expected = [_digest(t.encode("utf-8")) for t in tokens]

    def authorized(self, scope: Scope) -> bool:
        values = [v for k, v in scope.get("headers", []) if k.lower() == b"authorization"]
        if len(values) != 1:
            return False
        scheme, _, credentials = values[0].partition(b" ")
        if scheme.lower() != b"bearer":
            return False
        given = _digest(credentials.strip())
        # Compare with every token (no early exit), so the time taken says nothing about which one matched.
        matches = [hmac.compare_digest(given, expected) for expected in self._expected]
        return any(matches)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self.authorized(scope):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = json.dumps(
            {
                "jsonrpc": "2.0",
                "id": None,
                "error": {"code": -32001, "message": "Unauthorized: send 'Authorization: Bearer <token>'"},
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b'Bearer realm="ml-lab-mcp"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def build_http_app(
    mcp: MCPServer,
    *,
    host: str = "127.0.0.1",
    token: str | Sequence[str] | None = None,
    stateless: bool = False,
) -> ASGIApp:
    """The streamable HTTP ASGI app at /mcp, behind the bearer-token check when a token is given; /lab serves
    the views in a page of their own (see mcp_server.apps.LabPage)."""
    # json_response stays False: SSE streams carry progress notifications; JSON-only responses drop them.
    app: ASGIApp = mcp.streamable_http_app(
        streamable_http_path=MCP_PATH, json_response=False, stateless_http=stateless, host=host
    )
    if token:
        app = BearerTokenMiddleware(app, token)
    from mcp_server.apps import LabPage

    return LabPage(app)


def normalize_tokens(token: str | Sequence[str] | None) -> list[str]:
    """The tokens given (a string may hold several, comma-separated), surrounding whitespace dropped, empties out."""
    items = [token] if isinstance(token, str) else list(token or [])
    return [t.strip() for item in items for t in item.split(",") if t.strip()]


def check_bind(host: str, token: str | Sequence[str] | None) -> str | None:
    """An error message when this host/token combination must not start, else None."""
    if not is_loopback(host) and not normalize_tokens(token):
        return (
            f"ml-lab-mcp: binding {host} (not loopback) requires a bearer token: "
            "pass --auth-token or set ML_LAB_AUTH_TOKEN"
        )
    return None


def run_http(mcp: MCPServer, args: argparse.Namespace) -> int:
    tokens = normalize_tokens(args.auth_token)
    problem = check_bind(args.host, tokens)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    for token in tokens:
        if len(token) < MIN_TOKEN_CHARS:
            log.warning(
                "an auth token is short (%d chars); use at least %d random characters",
                len(token),
                MIN_TOKEN_CHARS,
            )
    import uvicorn

    app = build_http_app(mcp, host=args.host, token=tokens or None, stateless=args.stateless)
    url_host = f"[{args.host}]" if ":" in args.host else args.host
    log.info(
        "streamable HTTP on http://%s:%d%s (%s, %s)",
        url_host,
        args.port,
        MCP_PATH,
        f"bearer token required ({len(tokens)} accepted)" if tokens else "no token: loopback only",
        "stateless" if args.stateless else "sessions",
    )
    log.info(
        "the lab's views in a browser: http://%s:%d/lab%s",
        url_host,
        args.port,
        "#token=..." if tokens else "",
    )
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level=str(getattr(args, "log_level", "info")).lower(),
        access_log=False,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else 1
