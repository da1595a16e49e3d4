"""The floor for start-up: a bare MCPServer with one trivial tool."""

from mcp.server import MCPServer

mcp = MCPServer("bare")


@mcp.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


if __name__ == "__main__":
    mcp.run()
