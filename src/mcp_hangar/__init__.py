"""MCP Hangar: a gateway and control plane for Model Context Protocol servers."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mcp-hangar")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"

__all__ = ["__version__"]
