"""MCP over stdio (the front). Reads until stdin closes."""

from __future__ import annotations

import asyncio
import sys

from ..hangar import Hangar


async def serve_stdio(hangar: Hangar) -> None:
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.buffer.readline)
        if not line:
            return
