"""Run the real `ml-lab-mcp` entry point (mcp_server.cli.main) with the tool modules named in
$ML_LAB_RELIABILITY_REGISTRARS (the product's tools that exist, plus the harness's demo tool)."""

from __future__ import annotations

import functools
import os
import sys

from mcp_server import server


def main() -> int:
    names = tuple(n for n in os.environ.get("ML_LAB_RELIABILITY_REGISTRARS", "").split(",") if n)
    if names:
        server.build_server = functools.partial(server.build_server, registrars=names)
    from mcp_server.cli import main as cli_main

    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
