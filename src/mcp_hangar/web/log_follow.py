"""``GET /api/mcp_servers/{id}/logs?follow=true``: a server's log lines as Server-Sent Events.

The stream starts with the newest ``lines`` buffered lines, then every new line as the supervisor
records it (``event: log``, data ``{mcp_server_id, stream, content, recorded_at}``), with no gap and no
duplicate between the two: the follower is attached and the buffer read in one step of the event
loop. A follower that cannot keep up loses the oldest lines and is told (``event: dropped``, data
``{"count": N}``). A comment line every ``KEEPALIVE_S`` keeps proxies from closing an idle stream. The
stream ends when the client disconnects, when the server is deleted, at shutdown, and (with auth)
when the key that opened it is revoked or expires or its principal loses ``mcp_servers:read``: then a
last comment line says why.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

import orjson
from starlette.responses import StreamingResponse

from ..logs import redact_text

if TYPE_CHECKING:
    from ..hangar import Hangar
    from ..supervisor import LogLine, ManagedServer

KEEPALIVE_S = 15.0
FOLLOW_QUEUE = 1000


def log_entry(server_id: str, line: LogLine) -> dict[str, Any]:
    """The REST shape of one log line (secrets redacted)."""
    return {"mcp_server_id": server_id, "stream": line.stream, "content": redact_text(line.content),
            "recorded_at": line.recorded_at}


class _Follower:
    def __init__(self) -> None:
        self.lines: deque[LogLine] = deque()
        self.dropped = 0
        self.wakeup = asyncio.Event()
        self.ended = False
        self.withdrawn: str | None = None  # why its access was taken away

    def __call__(self, line: LogLine) -> None:
        if len(self.lines) >= FOLLOW_QUEUE:
            self.lines.popleft()
            self.dropped += 1
        self.lines.append(line)
        self.wakeup.set()

    def end(self) -> None:
        self.ended = True
        self.wakeup.set()

    def withdraw(self, reason: str) -> None:
        self.withdrawn = reason
        self.end()


class LogFollowers:
    """Every open follow stream of one app, so that shutdown can end them at once."""

    def __init__(self, hangar: Hangar) -> None:
        self.hangar = hangar
        self.active: set[_Follower] = set()
        self.closing = False

    def close_all(self) -> None:
        self.closing = True
        for follower in list(self.active):
            follower.end()

    def response(self, server: ManagedServer, tail: int, scope: Mapping[str, Any] | None = None) -> StreamingResponse:
        follower = _Follower()
        # Attach and read the buffer in one synchronous step: no line is missed or repeated.
        server.log_listeners.append(follower)
        backlog = list(server.logs)[-tail:]
        self.active.add(follower)
        if self.closing:
            follower.end()
        headers = {"cache-control": "no-cache, no-transform", "x-accel-buffering": "no"}
        return StreamingResponse(self._stream(server, follower, backlog, scope or {}),
                                 media_type="text/event-stream", headers=headers)

    async def _stream(self, server: ManagedServer, follower: _Follower, backlog: list[LogLine],
                      scope: Mapping[str, Any]) -> AsyncIterator[bytes]:
        sid = server.server_id
        unwatch = self.hangar.auth.live.watch_scope(scope, follower.withdraw)  # None with auth off
        try:
            yield b": following " + sid.encode() + b"\n\n"
            for line in backlog:
                yield _event("log", log_entry(sid, line))
            while not follower.ended:
                if not follower.lines and not follower.dropped:
                    follower.wakeup.clear()
                    try:
                        await asyncio.wait_for(follower.wakeup.wait(), KEEPALIVE_S)
                    except TimeoutError:
                        if self.hangar.servers.get(sid) is not server:
                            break  # deleted
                        yield b": ping\n\n"
                    continue
                if follower.dropped:
                    count, follower.dropped = follower.dropped, 0
                    yield _event("dropped", {"count": count})
                while follower.lines:
                    yield _event("log", log_entry(sid, follower.lines.popleft()))
            if follower.withdrawn is not None:
                yield b": stream ended: " + follower.withdrawn.encode() + b"\n\n"
        finally:
            if unwatch is not None:
                unwatch()
            self.active.discard(follower)
            with contextlib.suppress(ValueError):
                server.log_listeners.remove(follower)


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
