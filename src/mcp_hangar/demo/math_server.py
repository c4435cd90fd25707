"""The bundled demo MCP server ``math``: arithmetic tools over stdio, in both protocol eras."""

from __future__ import annotations

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("math", version="1.0.0", instructions="Basic arithmetic on two numbers.")


@server.tool()
def add(a: float, b: float) -> float:
    """Add two numbers."""
    return a + b


@server.tool()
def subtract(a: float, b: float) -> float:
    """Subtract b from a."""
    return a - b


@server.tool()
def multiply(a: float, b: float) -> float:
    """Multiply two numbers."""
    return a * b


@server.tool()
def divide(a: float, b: float) -> float:
    """Divide a by b. Dividing by zero is an error."""
    if b == 0:
        raise ToolError("division by zero")
    return a / b


@server.tool()
def power(base: float, exponent: float) -> float:
    """Raise base to the power of exponent."""
    return float(base**exponent)


def main() -> None:
    server.run()


if __name__ == "__main__":
    main()
