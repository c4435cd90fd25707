"""The MCP front over stdio: JSON lines on stdin and stdout, requests served concurrently."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Coroutine
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
        # Made in the loop it writes in. Kept, because Python 3.11's get_running_loop() checks the
        # process id with a system call every time (BENCHMARKS.md, sixth round).
        self._loop = asyncio.get_running_loop()
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
            self._loop.call_soon(self._flush)
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
                self._loop.add_writer(self._fd, self._writable)
            return
        self._queued = 0
        self._drained.set()

    def close(self) -> None:
        if self._blocked:
            self._loop.remove_writer(self._fd)
            self._blocked = False

    def _writable(self) -> None:
        self._loop.remove_writer(self._fd)
        self._blocked = False
        self._flush()


class _LineReader(asyncio.Protocol):
    """Splits stdin into lines where the pipe delivers them (no stream, no task woken per read); a line
    longer than ``max_line`` is dropped whole and reported once."""

    def __init__(self, on_line: Callable[[bytes], None], on_too_large: Callable[[], None],
                 max_line: int = MAX_LINE) -> None:
        self._max = max_line
        self._on_line = on_line
        self._on_too_large = on_too_large
        self._partial = bytearray()
        self._skipping = False  # inside a line too large to keep
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        start = 0
        while True:
            nl = data.find(b"\n", start)
            if nl < 0:
                if not self._skipping:
                    self._partial += data[start:]
                    if len(self._partial) > self._max:
                        self._partial.clear()
                        self._skipping = True
                        self._on_too_large()
                return
            if self._skipping:
                self._skipping = False
            elif self._partial:
                self._partial += data[start:nl]
                line, self._partial = bytes(self._partial), bytearray()
                if len(line) > self._max:
                    self._on_too_large()
                else:
                    self._on_line(line)
            elif nl - start > self._max:
                self._on_too_large()
            else:
                self._on_line(data[start:nl])
            start = nl + 1

    def eof_received(self) -> bool:
        self._end()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._end()

    def _end(self) -> None:
        if not self.closed.done():
            self.closed.set_result(None)  # a last line without its newline is not a message, as before


async def serve_stdio(hangar: Hangar, stdin_fd: int | None = None, stdout_fd: int | None = None) -> None:
    """Serve one MCP client on stdin/stdout until stdin closes."""
    in_fd = sys.stdin.fileno() if stdin_fd is None else stdin_fd
    out_fd = sys.stdout.fileno() if stdout_fd is None else stdout_fd
    os.set_blocking(out_fd, False)
    loop = asyncio.get_running_loop()
    writer = _StdoutWriter(out_fd)
    front = Front(hangar)
    session = FrontSession(front, writer.write, transport="stdio")
    session.principal = hangar.auth.stdio_principal()  # stdio has no credentials: the config names it
    tasks: set[asyncio.Task[Any]] = set()

    def spawn(work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = loop.create_task(work)
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return task

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

    def on_line(line: bytes) -> None:
        if not line.strip():
            return
        try:
            message = orjson.loads(line)
        except orjson.JSONDecodeError:
            spawn(writer.write(error_response(None, PARSE_ERROR, "Parse error: not valid JSON")))
            return
        task = spawn(serve_one(message))
        # A request a notifications/cancelled can name: its id is a string or an integer (any other id
        # is refused by the session).
        if isinstance(message, dict) and "method" in message and message.get("id").__class__ in (int, str):
            session.in_flight[message["id"]] = task

    def on_too_large() -> None:
        spawn(writer.write(error_response(None, PARSE_ERROR, "message too large")))

    read_pipe = os.fdopen(os.dup(in_fd), "rb", buffering=0)
    transport, reader = await loop.connect_read_pipe(lambda: _LineReader(on_line, on_too_large), read_pipe)
    try:
        await reader.closed
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
