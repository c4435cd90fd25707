"""Entry points of the ``mcp_hangar.servers`` group."""

from __future__ import annotations

import sys
from typing import Any


def demo() -> dict[str, Any]:
    """The server spec this package offers: its own MCP server module, run by this interpreter."""
    return {"mode": "subprocess", "command": [sys.executable, "-m", "hangar_entrypoint_demo.server"],
            "description": "greets people (from an entry point)"}


def broken() -> dict[str, Any]:
    raise RuntimeError("this entry point is broken on purpose")
