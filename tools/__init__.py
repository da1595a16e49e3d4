"""The torch core of ml-lab-mcp: one module per tool, pure functions, no MCP.

Importing this package (or any tool module) must stay cheap: torch, diffusers and
matplotlib are imported inside the functions that need them, so the server can
answer `initialize` before any of them is loaded.
"""

__version__ = "0.1.0"
