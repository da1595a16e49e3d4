"""Streamable HTTP transport. Loopback by default; any other bind address requires a bearer token."""

from __future__ import annotations

import argparse
import ipaddress
import sys

from mcp.server.mcpserver import MCPServer


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run_http(mcp: MCPServer, args: argparse.Namespace) -> int:
    if not _is_loopback(args.host) and not args.auth_token:
        print(
            f"ml-lab-mcp: binding {args.host} (not loopback) requires --auth-token or ML_LAB_AUTH_TOKEN",
            file=sys.stderr,
        )
        return 2
    # TODO(launch issue): bearer-token middleware on every request.
    mcp.run("streamable-http", host=args.host, port=args.port, stateless_http=args.stateless)
    return 0
