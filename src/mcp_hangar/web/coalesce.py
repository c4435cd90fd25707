"""uvicorn's HTTP protocol, with a response's head and body leaving in one system call.

uvicorn writes the status line and headers as soon as the app sends ``http.response.start``, and the
body at ``http.response.body``: two writes, two TCP segments, and often two wake-ups of the client, for
every small JSON answer. Here the connection's transport holds a write back until the end of the event
loop's turn; a second write in the same turn (the body, right after the head) leaves together with it in
one ``writelines``. Nothing else changes: every other transport method is the real transport's.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HOLD_MAX = 16 * 1024  # a write larger than this leaves at once (with what was held): it is no head


class CoalescingTransport:
    """Wraps a connection's transport (see the module's docstring)."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.writelines((held, data))
        elif len(data) > HOLD_MAX:
            self._transport.write(data)
        else:
            self._held = data
            self._loop.call_soon(self._flush)

    def writelines(self, chunks: Any) -> None:
        self._flush()
        self._transport.writelines(chunks)

    def _flush(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():
                self._transport.write(held)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        size: int = self._transport.get_write_buffer_size()
        return size + (len(self._held) if self._held is not None else 0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol on a ``CoalescingTransport``."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
