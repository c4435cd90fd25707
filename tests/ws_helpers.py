"""A small client for /api/ws/events used by the WebSocket tests (the ``websockets`` library)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

Message = dict[str, Any]


def ws_url(base_url: str) -> str:
    return base_url.replace("http://", "ws://", 1) + "/api/ws/events"


async def open_stream(base_url: str, **kwargs: Any) -> EventClient:
    ws = await connect(ws_url(base_url), open_timeout=10, ping_interval=None, **kwargs)
    return EventClient(ws)


class EventClient:
    """Reads messages in order; remembers when each arrived (``time.time()``)."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.received: list[tuple[float, Message]] = []
        self.keep = True  # False: remember only the control messages (for long runs)

    async def send(self, message: Message) -> None:
        await self.ws.send(orjson.dumps(message).decode())

    async def next(self, timeout: float = 10.0) -> Message:
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        message: Message = orjson.loads(raw)
        if self.keep or "type" in message:
            self.received.append((time.time(), message))
        return message

    async def until(self, predicate: Callable[[Message], bool], timeout: float = 15.0) -> list[Message]:
        """Every message up to and including the first one matching ``predicate``."""
        out: list[Message] = []
        async with asyncio.timeout(timeout):
            while True:
                message = await self.next(timeout)
                out.append(message)
                if predicate(message):
                    return out

    async def subscribe(self, **fields: Any) -> tuple[Message, list[Message]]:
        """Send a subscribe; return its answer and whatever arrived before it."""
        await self.send({"type": "subscribe", **fields})
        before = await self.until(lambda m: m.get("type") == "subscribed")
        return before[-1], before[:-1]

    async def close(self) -> None:
        await self.ws.close()


def is_event(message: Message) -> bool:
    return "event_type" in message


@contextlib.asynccontextmanager
async def serve_app(app: Any) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port in this event loop; yield its base URL."""
    import uvicorn

    from conftest import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off",
                                           access_log=False))
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]  # the test owns signals
    task = asyncio.get_running_loop().create_task(server.serve())
    try:
        async with asyncio.timeout(20):
            while not server.started:  # uvicorn has no start event to wait on
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        app.state.begin_shutdown()
        server.should_exit = True
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(task, 10)
