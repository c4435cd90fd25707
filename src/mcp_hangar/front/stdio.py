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
    """Writes whole lines to fd 1 without blocking the loop (a pipe may be full).

    Lines written in one turn of the event loop leave in one system call; a writer waits only when
    more than ``HIGH_WATER`` bytes are queued behind a full pipe, which is the client's backpressure."""

    HIGH_WATER = 1024 * 1024

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._chunks: list[bytes] = []
        self._queued = 0  # bytes in _chunks
        self._scheduled = False  # a flush is due at the end of this loop turn
        self._blocked = False  # waiting for the pipe to accept more
        self._drained = asyncio.Event()
        self._drained.set()

    async def write(self, message: JsonObject) -> None:
        data = orjson.dumps(message) + b"\n"
        self._chunks.append(data)
        self._queued += len(data)
        if not self._scheduled and not self._blocked:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        if self._queued > self.HIGH_WATER:
            self._drained.clear()
            await self._drained.wait()

    async def drain(self) -> None:
        """Wait until every queued line has been written (or the client has gone)."""
        if self._chunks and not self._blocked:
            self._flush()
        if self._chunks:
            self._drained.clear()
            await self._drained.wait()

    def _flush(self) -> None:
        self._scheduled = False
        if not self._chunks:
            return
        data = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks.clear()
        try:
            written = os.write(self._fd, data)
        except BlockingIOError:
            written = 0
        except OSError:  # the client closed its end: nobody reads any more
            written = len(data)
        if written < len(data):
            self._chunks.append(data[written:])
            self._queued = len(data) - written
            if not self._blocked:
                self._blocked = True
                asyncio.get_running_loop().add_writer(self._fd, self._writable)
            return
        self._queued = 0
        self._drained.set()

    def close(self) -> None:
        if self._blocked:
            asyncio.get_running_loop().remove_writer(self._fd)
            self._blocked = False

    def _writable(self) -> None:
        asyncio.get_running_loop().remove_writer(self._fd)
        self._blocked = False
        self._flush()


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
        # Resolved per message (a dictionary hit): a reload that changes auth.stdio.principal, or a role
        # assigned or revoked meanwhile, applies to the next request.
        session.principal = hangar.auth.stdio_principal()
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
        # stdin closed: let the requests already received finish and their answers leave (bounded).
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(writer.drain(), 5)
    finally:
        for task in tasks:
            task.cancel()
        session.close()
        front.close()
        writer.close()
        transport.close()
