"""The MCP front over stdio: JSON lines on stdin and stdout, requests served concurrently."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from typing import Any

import orjson

from ..hangar import Hangar
from .session import PARSE_ERROR, Front, FrontSession, JsonObject, error_response

log = logging.getLogger(__name__)
MAX_LINE = 64 * 1024 * 1024


class _StdoutWriter:
    """Writes whole lines to fd 1 without blocking the loop for long (a pipe may be full)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._lock = asyncio.Lock()

    async def write(self, message: JsonObject) -> None:
        data = orjson.dumps(message) + b"\n"
        async with self._lock:
            loop = asyncio.get_running_loop()
            view = memoryview(data)
            while view:
                try:
                    written = os.write(self._fd, view)
                except BlockingIOError:
                    waiter = loop.create_future()
                    loop.add_writer(self._fd, waiter.set_result, None)
                    try:
                        await waiter
                    finally:
                        loop.remove_writer(self._fd)
                    continue
                view = view[written:]


async def serve_stdio(hangar: Hangar, stdin_fd: int | None = None, stdout_fd: int | None = None) -> None:
    """Serve one MCP client on stdin/stdout until stdin closes."""
    in_fd = sys.stdin.fileno() if stdin_fd is None else stdin_fd
    out_fd = sys.stdout.fileno() if stdout_fd is None else stdout_fd
    os.set_blocking(out_fd, False)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_LINE)
    read_pipe = os.fdopen(os.dup(in_fd), "rb", buffering=0)
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), read_pipe)
    writer = _StdoutWriter(out_fd)
    front = Front(hangar)
    session = FrontSession(front, writer.write, transport="stdio")
    session.principal = hangar.auth.stdio_principal()  # stdio has no credentials: the config names it
    tasks: set[asyncio.Task[Any]] = set()

    async def serve_one(message: Any) -> None:
        request_id = message.get("id") if isinstance(message, dict) else None
        try:
            response = await session.handle(message)
        finally:
            session.in_flight.pop(request_id, None)
        if response is not None:
            await writer.write(response)

    try:
        while True:
            try:
                line = await reader.readline()
            except (ValueError, asyncio.LimitOverrunError):
                await writer.write(error_response(None, PARSE_ERROR, "message too large"))
                continue
            if not line:
                break
            if not line.strip():
                continue
            try:
                message = orjson.loads(line)
            except orjson.JSONDecodeError:
                await writer.write(error_response(None, PARSE_ERROR, "Parse error: not valid JSON"))
                continue
            task = loop.create_task(serve_one(message))
            if isinstance(message, dict) and "id" in message and "method" in message:
                with contextlib.suppress(TypeError):
                    session.in_flight[message["id"]] = task
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        # stdin closed: let the requests already received finish (bounded), then leave.
        if tasks:
            await asyncio.wait(tasks, timeout=5)
    finally:
        for task in tasks:
            task.cancel()
        session.close()
        front.close()
        transport.close()
