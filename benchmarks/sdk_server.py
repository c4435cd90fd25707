"""An MCP upstream written with the official ``mcp`` SDK (stdio): the realistic counterpart of fast_server.py.

Tools: ``echo {text}`` and ``add {a, b}``, the same as the fast upstream."""

from __future__ import annotations

from mcp.server import MCPServer

server = MCPServer("bench-sdk", version="1")


@server.tool()
def echo(text: str) -> str:
    """Echo text."""
    return text


@server.tool()
def add(a: float, b: float) -> float:
    """Add two numbers."""
    return a + b


if __name__ == "__main__":
    server.run()
