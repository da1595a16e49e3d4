"""ml-lab-mcp: the MCP protocol adapter. Registers the `tools` core with the SDK's MCPServer."""

from tools import __version__

__all__ = ["__version__"]
