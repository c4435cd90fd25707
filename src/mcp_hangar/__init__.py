"""MCP Hangar: a gateway and control plane for Model Context Protocol servers."""

__version__ = "0.1.0"

__all__ = ["__version__"]
