"""Who may call a server right now: its running calls, and the hold a reload puts on new ones.

A reload that restarts or removes a server first ``hold``s it: new calls wait instead of starting. A
graceful reload then ``drain``s it (waits, bounded, until its running calls are done) before stopping
it; a forced one stops it at once, and the calls it cuts off get ``McpServerUnavailableError`` naming
the stop's reason. ``release`` lets the waiting calls go on, to the new process, or (the server was
removed) to ``McpServerNotFoundError``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any

from .errors import HangarError, McpServerNotFoundError, McpServerUnavailableError, UpstreamError, UpstreamRpcError


class Slots:
    """The ``max_concurrency`` calls a server runs at once: a semaphore whose free slot is taken without a
    coroutine (``take_now``), the usual case; callers that find none ``wait`` in order, and a released
    slot goes straight to the first of them."""

    __slots__ = ("_waiters", "free", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.free = limit
        self._waiters: deque[asyncio.Future[None]] = deque()

    def take_now(self) -> bool:
        if self.free > 0 and not self._waiters:
            self.free -= 1
            return True
        return False

    async def wait(self) -> None:
        """Wait for a slot (after ``take_now`` said no)."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.give()  # handed a slot just as it was cancelled: pass it on
            else:
                self._waiters.remove(waiter)
            raise

    def give(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot changes hands: ``free`` stays as it is
                return
        self.free += 1


class Admission:
    """Mixin of ``ManagedServer``: ``in_flight`` counting, hold, drain and the error of a cut-off call."""

    server_id: str

    def __init__(self) -> None:
        self.in_flight = 0
        self.removed = False  # deleted by a reload: calls that waited for it are refused
        self._held: asyncio.Event | None = None  # set on release
        self._idle: asyncio.Event | None = None  # set when in_flight drops to 0 during a drain
        self._cut: tuple[Any, str] | None = None  # (upstream, reason) of the last stop that cut calls off

    @property
    def held(self) -> bool:
        """Whether new calls wait (a reload is draining or restarting this server)."""
        return self._held is not None

    def hold(self) -> None:
        """New calls wait until ``release``."""
        if self._held is None:
            self._held = asyncio.Event()

    def release(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            held.set()

    async def drain(self, timeout: float) -> int:
        """Wait until no call is running, at most ``timeout`` seconds; return how many still run."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.in_flight and (remaining := deadline - loop.time()) > 0:
            self._idle = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), remaining)
        self._idle = None
        return self.in_flight

    async def _admit(self) -> None:
        """Wait while held; refuse when the server was removed meanwhile."""
        while self._held is not None:
            await self._held.wait()
        if self.removed:
            raise McpServerNotFoundError(self.server_id)

    def _left(self) -> None:
        """A call ended (counted in by ``in_flight += 1`` inline, on the hot path)."""
        self.in_flight -= 1
        if not self.in_flight and self._idle is not None:
            self._idle.set()

    upstream: Any

    def note_cut(self, reason: str) -> None:
        """A deliberate stop (a reload's) is about to close the upstream under its running calls: they
        get a 503 naming ``reason`` (other stops keep the upstream's own error)."""
        if self.in_flight and self.upstream is not None:
            self._cut = (self.upstream, reason)

    def _cut_error(self, upstream: Any, exc: HangarError) -> HangarError:
        """The error a call gets: a clear one when a stop cut it off, else its own."""
        cut = self._cut
        if cut is None or upstream is None or cut[0] is not upstream or not isinstance(exc, UpstreamError) \
                or isinstance(exc, UpstreamRpcError):
            return exc
        return McpServerUnavailableError(
            f"MCP Server '{self.server_id}' was stopped ({cut[1]}) while this call was running: {exc.message}")
