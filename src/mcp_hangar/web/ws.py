"""``/api/ws/events``: the domain events of the bus, live, over WebSocket, with filters and replay.

Protocol (text frames, JSON):

- The client may send ``{"type": "subscribe", "event_types": [...], "mcp_server_ids": [...], "since": ...}``
  at any time; an omitted key means no filter. ``event_types`` entries are exact event names, ``"*"``,
  or two-segment patterns ``<category>/<EventType>`` where ``*`` stands for a whole segment
  (``lifecycle/*``, ``*/McpServerStateChanged``); partial wildcards (``Foo*``) and unknown names are
  refused and listed in the answer ``{"type": "subscribed", "event_types": [...accepted],
  "rejected_event_types": [...], "mcp_server_ids": [...]}``. Events are held (not lost) for up to
  ``SUBSCRIBE_GRACE_S`` after connecting, so a first subscribe decides what the client sees.
- ``since`` (an ``event_id``, or epoch seconds) first replays the stored events after that point that
  match the filters, then ``{"type": "replay_complete", "count": N}``, then live events: no gap and no
  duplicate, because the event log numbers events as they are published (see ``event_log``).
- Every other message is an event: ``{"event_type", "event_id", "occurred_at", "produced_by", fields...}``.
- Keep-alive: after ``ws_ping_interval_s`` without a word from the client Hangar sends ``{"type": "ping"}``
  and closes (1001) if no message comes within ``ws_ping_timeout_s``; clients answer ``{"type": "pong"}``
  and may send ``{"type": "ping"}`` themselves.
- Each connection has a bounded queue (``ws_queue_size``): a slow client loses the oldest events and is
  told before the next one it gets: ``{"type": "dropped", "count": N}``. It never slows Hangar or others.
- Admission: the Origin header (when sent) must be in the CORS allow-list (``MCP_CORS_ORIGINS``; ``*``
  allows any), else the socket is closed with 1008. Further checks (a permission, with auth) are
  added to ``EventStream.admission``.
- With auth, a socket whose grant is withdrawn while it is open (its key revoked or expired, its
  principal no longer holding ``events:read``) is closed at once with 1008 and the reason.
- Shutdown closes every socket at once with 1001.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..event_log import event_json
from ..events import Event

if TYPE_CHECKING:
    from ..config import ObservabilitySettings
    from ..event_log import EventLog
    from ..metrics import Metrics

log = logging.getLogger(__name__)

PATH = "/api/ws/events"
SUBSCRIBE_GRACE_S = 5.0
REPLAY_PAGE = 500
CLOSE_TIMEOUT_S = 1.0
POLICY_VIOLATION = 1008
GOING_AWAY = 1001
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,127}$")

# Categories, the first segment of an event's topic (``<category>/<EventType>``).
_CATEGORY_BY_NAME: dict[str, str] = {
    **dict.fromkeys(("McpServerStarted", "McpServerStopped", "McpServerStateChanged", "McpServerStartFailed",
                     "McpServerCrashed", "McpServerDegraded", "McpServerToolsChanged", "McpServerIdleDetected",
                     "CircuitBreakerStateChanged"), "lifecycle"),
    **dict.fromkeys(("McpServerRegistered", "McpServerUpdated", "McpServerDeregistered"), "administration"),
    **dict.fromkeys(("McpServerDiscovered", "McpServerDiscoveryLost", "McpServerDiscoveryConfigChanged",
                     "McpServerQuarantined", "McpServerApproved"), "discovery"),
    "ToolCallRefused": "invocation",
}
_CATEGORY_BY_PREFIX: tuple[tuple[str, str], ...] = (
    ("HealthCheck", "health"), ("ToolInvocation", "invocation"), ("Batch", "invocation"), ("Group", "group"),
    ("Configuration", "config"), ("Discovery", "discovery"), ("Authentication", "auth"),
    ("Authorization", "auth"), ("ApiKey", "auth"), ("Role", "auth"), ("CustomRole", "auth"),
    ("ToolAccessPolicy", "auth"), ("RateLimit", "auth"), ("KeyRotated", "auth"), ("ToolCallRefused", "auth"),
)
CATEGORIES = ("lifecycle", "health", "invocation", "administration", "group", "config", "discovery", "auth", "system")


def category_of(event_type: str) -> str:
    found = _CATEGORY_BY_NAME.get(event_type)
    if found is not None:
        return found
    for prefix, category in _CATEGORY_BY_PREFIX:
        if event_type.startswith(prefix):
            return category
    return "system"


def server_of(fields: Callable[[str], Any]) -> str | None:
    """The MCP server an event is about (its ``mcp_server_id``, or a group member's id)."""
    for key in ("mcp_server_id", "member_id"):
        value = fields(key)
        if isinstance(value, str):
            return value
    return None


def check_event_type(entry: Any) -> str | None:
    """Why ``entry`` is not an acceptable ``event_types`` entry, or None when it is."""
    if not isinstance(entry, str) or not entry or len(entry) > 300:
        return "not an event type name"
    if entry == "*":
        return None
    segments = entry.split("/")
    if any("*" in s and s != "*" for s in segments):
        return "partial wildcards are not supported: '*' must be a whole segment"
    if len(segments) == 1:
        return None if entry in Event.registry else "unknown event type"
    if len(segments) != 2:
        return "a pattern has two segments: <category>/<EventType>"
    category, name = segments
    if category != "*" and category not in CATEGORIES:
        return f"unknown category (one of {', '.join(CATEGORIES)})"
    if name != "*" and name not in Event.registry:
        return "unknown event type"
    return None


@dataclass(frozen=True)
class Filter:
    """What one connection wants. ``None`` means no filter on that dimension."""

    names: frozenset[str] | None = None  # exact names
    patterns: tuple[tuple[str, str], ...] = ()  # (category, name), either may be "*"
    servers: frozenset[str] | None = None

    @classmethod
    def build(cls, event_types: list[str] | None, servers: list[str] | None) -> Filter:
        names: frozenset[str] | None = None
        patterns: tuple[tuple[str, str], ...] = ()
        if event_types is not None and "*" not in event_types:
            names = frozenset(e for e in event_types if "/" not in e)
            patterns = tuple((e.split("/")[0], e.split("/")[1]) for e in event_types if "/" in e)
        wanted = None if servers is None or "*" in servers else frozenset(servers)
        return cls(names, patterns, wanted)

    def matches(self, event_type: str, server: str | None) -> bool:
        if self.servers is not None and server not in self.servers:
            return False
        if self.names is None or event_type in self.names:
            return True
        if not self.patterns:
            return False
        category = category_of(event_type)
        return any((c == "*" or c == category) and (n == "*" or n == event_type) for c, n in self.patterns)

    def matches_event(self, event: Event) -> bool:
        if self.names is None and self.servers is None:
            return True
        return self.matches(event.event_type, server_of(lambda k: getattr(event, k, None)))


class Outbox:
    """A connection's bounded queue of (position, event): the oldest is dropped, and counted, when full."""

    def __init__(self, maxsize: int) -> None:
        self.items: deque[tuple[int, Event]] = deque()
        self.maxsize = maxsize
        self.dropped = 0  # not yet reported to the client
        self.wakeup = asyncio.Event()

    def put(self, position: int, event: Event) -> None:
        if len(self.items) >= self.maxsize:
            self.items.popleft()
            self.dropped += 1
        self.items.append((position, event))
        self.wakeup.set()

    async def wait(self) -> None:
        while not self.items and not self.dropped:
            self.wakeup.clear()
            await self.wakeup.wait()

    def clear(self) -> None:
        self.items.clear()
        self.dropped = 0


def _dumps(payload: Any) -> str:
    return orjson.dumps(payload, default=str).decode()


AdmissionCheck = Callable[[WebSocket], Awaitable[tuple[int, str] | None]]
# Called for each admitted socket with a ``withdraw(reason)`` callback; returns what to call when it closes.
Watcher = Callable[[WebSocket, Callable[[str], None]], Callable[[], None] | None]
MAX_REASON_BYTES = 123  # the most a close frame carries


class EventStream:
    """Every open event-stream connection of one app, fed by the event log's tap."""

    def __init__(self, event_log: EventLog, metrics: Metrics, settings: ObservabilitySettings, *,
                 produced_by: str, allowed_origins: Iterable[str]) -> None:
        self.event_log = event_log
        self.metrics = metrics
        self.settings = settings
        self.produced_by = produced_by
        self.allowed_origins = {o.strip().lower().rstrip("/") for o in allowed_origins}
        self.connections: set[Connection] = set()
        self.closing = False
        # Checks run at connect, in order; one that returns (close code, reason) refuses the client.
        self.admission: list[AdmissionCheck] = [self._check_origin]
        self.watchers: list[Watcher] = []  # auth: close a socket whose access is withdrawn
        # The log's tap is attached while a client is connected: with none, an event costs it nothing.

    def _offer(self, position: int, event: Event) -> None:
        for connection in self.connections:
            connection.offer(position, event)

    async def _check_origin(self, websocket: WebSocket) -> tuple[int, str] | None:
        origin = websocket.headers.get("origin")
        if origin is None or "*" in self.allowed_origins:
            return None  # not a browser, or any origin allowed
        if origin.strip().lower().rstrip("/") in self.allowed_origins:
            return None
        return POLICY_VIOLATION, "origin not allowed"

    def close_all(self) -> None:
        """Close every socket now (at the first shutdown signal); refuse new ones."""
        self.closing = True
        for connection in list(self.connections):
            connection.shutdown.set()

    def detach(self) -> None:
        self.event_log.remove_tap(self._offer)

    def serialize(self, event: Event) -> str:
        return event_json(event, self.produced_by).decode()

    async def endpoint(self, websocket: WebSocket) -> None:
        if self.closing:
            await websocket.close(GOING_AWAY)
            return
        await websocket.accept()
        for check in self.admission:
            refused = await check(websocket)
            if refused is not None:
                with contextlib.suppress(Exception):
                    await websocket.close(*refused)
                return
        connection = Connection(self, websocket)
        unwatch = [u for watcher in self.watchers if (u := watcher(websocket, connection.withdraw)) is not None]
        if not self.connections:
            self.event_log.add_tap(self._offer)
        self.connections.add(connection)
        self.metrics.websocket_clients.inc()
        try:
            await connection.run()
        finally:
            for stop in unwatch:
                stop()
            self.connections.discard(connection)
            if not self.connections:
                self.event_log.remove_tap(self._offer)
            self.metrics.websocket_clients.dec()


class Connection:
    """One client: a reader (subscribe, ping, pong), a writer (the outbox), and the keep-alive."""

    def __init__(self, stream: EventStream, websocket: WebSocket) -> None:
        self.stream = stream
        self.websocket = websocket
        self.filter = Filter()
        self.outbox = Outbox(stream.settings.ws_queue_size)
        self.last_sent = 0  # position of the last event sent (replay included)
        self.last_heard = time.monotonic()
        self.heard = asyncio.Event()
        self.subscribed = asyncio.Event()
        self.shutdown = asyncio.Event()
        self.send_lock = asyncio.Lock()
        self.close_reason: tuple[int, str] | None = None
        self.withdrawn = asyncio.Event()

    def withdraw(self, reason: str) -> None:
        """Close this socket now with 1008 and ``reason`` (its access was taken away)."""
        text = reason.encode()[:MAX_REASON_BYTES].decode("utf-8", "ignore")
        self.close_reason = (POLICY_VIOLATION, text)
        self.withdrawn.set()

    def offer(self, position: int, event: Event) -> None:
        if self.filter.matches_event(event):
            self.outbox.put(position, event)

    async def run(self) -> None:
        tasks = [asyncio.ensure_future(c) for c in (self._reader(), self._writer(), self._keepalive(),
                                                     self.shutdown.wait(), self.withdrawn.wait())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(BaseException):
                    await task
        if self.shutdown.is_set() and not self.withdrawn.is_set():
            self.close_reason = (GOING_AWAY, "Hangar is shutting down")
        if self.close_reason is not None:
            # A client that stopped reading cannot take a close frame either: bounded, then the
            # server drops the connection.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await self.websocket.close(*self.close_reason)

    async def _send(self, payload: str) -> None:
        await self.websocket.send_text(payload)

    # ------------------------------------------------------------------ reader

    async def _reader(self) -> None:
        while True:
            try:
                message = await self.websocket.receive()
            except (WebSocketDisconnect, RuntimeError, OSError):
                return
            if message["type"] == "websocket.disconnect":
                return
            self.last_heard = time.monotonic()
            self.heard.set()
            raw = message.get("text")
            if raw is None and message.get("bytes") is not None:
                raw = message["bytes"].decode("utf-8", "replace")
            try:
                request = orjson.loads(raw or "")
            except orjson.JSONDecodeError:
                await self._reply({"type": "error", "message": "messages must be JSON objects"})
                continue
            kind = request.get("type") if isinstance(request, dict) else None
            if kind == "subscribe":
                await self._subscribe(request)
            elif kind == "ping":
                await self._reply({"type": "pong"})
            elif kind == "pong":
                pass
            else:
                await self._reply({"type": "error", "message": "unknown message type; expected subscribe, "
                                                               "ping or pong"})

    async def _reply(self, payload: dict[str, Any]) -> None:
        async with self.send_lock:
            await self._send(_dumps(payload))

    async def _subscribe(self, request: dict[str, Any]) -> None:
        ack: dict[str, Any] = {"type": "subscribed"}
        event_types: list[str] | None = None
        if request.get("event_types") is not None:
            raw = request["event_types"]
            entries = raw if isinstance(raw, list) else [raw]
            reasons = {str(e): why for e in entries if (why := check_event_type(e)) is not None}
            event_types = [e for e in entries if isinstance(e, str) and str(e) not in reasons]
            ack["event_types"] = event_types
            ack["rejected_event_types"] = [e for e in entries if str(e) in reasons]
            if reasons:
                ack["rejected_reasons"] = reasons
        else:
            ack["event_types"], ack["rejected_event_types"] = ["*"], []
        servers: list[str] | None = None
        if request.get("mcp_server_ids") is not None:
            raw = request["mcp_server_ids"]
            entries = raw if isinstance(raw, list) else [raw]
            servers = [s for s in entries if isinstance(s, str)]
            ack["mcp_server_ids"] = servers
            bad = [s for s in entries if not isinstance(s, str)]
            if bad:
                ack["rejected_mcp_server_ids"] = bad
        else:
            ack["mcp_server_ids"] = ["*"]
        since = request.get("since")
        ack["since"] = since
        log_ = self.stream.event_log
        async with self.send_lock:
            self.filter = Filter.build(event_types, servers)
            start, problem = await self._resolve_since(since) if since is not None else (None, None)
            if start is not None:
                # Everything up to ``up_to`` comes from the log; the outbox keeps only later events.
                up_to = log_.position
                self.outbox.clear()
            await self._send(_dumps(ack))
            if problem is not None:
                await self._send(_dumps({"type": "error", "message": problem}))
            if start is not None:
                count = await self._replay(start, up_to)
                self.last_sent = max(self.last_sent, up_to)
                await self._send(_dumps({"type": "replay_complete", "count": count}))
        self.subscribed.set()

    async def _resolve_since(self, since: Any) -> tuple[int | None, str | None]:
        """The position after which to replay, or a problem to report (then nothing is replayed)."""
        log_ = self.stream.event_log
        await log_.flush()
        if isinstance(since, bool) or not isinstance(since, (str, int, float)):
            return None, "since: give an event_id (string) or a time (epoch seconds)"
        if isinstance(since, str):
            position = await log_.position_of(since)
            if position is None:
                return None, f"since: event {since!r} is not in the event log (unknown, or older than its retention)"
            return position, None
        return await log_.position_before(float(since)), None

    async def _replay(self, after: int, up_to: int) -> int:
        log_ = self.stream.event_log
        await log_.flush()
        count = 0
        while after < up_to:
            page = await log_.read(after, up_to, REPLAY_PAGE)
            if not page:
                break
            for stored in page:
                data = stored.data
                if self.filter.matches(stored.event_type, server_of(data.get)):
                    await self._send(_dumps(data))
                    count += 1
            after = page[-1].position
        return count

    # ------------------------------------------------------------------ writer

    async def _writer(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SUBSCRIBE_GRACE_S):
                await self.subscribed.wait()
        outbox = self.outbox
        while True:
            await outbox.wait()
            async with self.send_lock:
                if outbox.dropped:
                    dropped, outbox.dropped = outbox.dropped, 0
                    self.stream.metrics.websocket_dropped.inc(dropped)
                    await self._send(_dumps({"type": "dropped", "count": dropped}))
                if not outbox.items:
                    continue
                position, event = outbox.items.popleft()
                if position <= self.last_sent or not self.filter.matches_event(event):
                    continue
                await self._send(self.stream.serialize(event))
                self.last_sent = position

    # ------------------------------------------------------------------ keep-alive

    async def _keepalive(self) -> None:
        interval = self.stream.settings.ws_ping_interval_s
        timeout = self.stream.settings.ws_ping_timeout_s
        while True:
            quiet = time.monotonic() - self.last_heard
            if quiet < interval:
                self.heard.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.heard.wait(), interval - quiet)
                continue
            self.heard.clear()
            try:
                async with asyncio.timeout(timeout):
                    await self._reply({"type": "ping"})
                    await self.heard.wait()
            except TimeoutError:
                self.close_reason = (GOING_AWAY, "no pong")
                return


def add_shutdown_hook(state: Any, hook: Callable[[], None]) -> None:
    """Run ``hook`` too when the server calls ``state.begin_shutdown`` (the first shutdown signal)."""
    previous: Callable[[], None] | None = getattr(state, "begin_shutdown", None)

    def begin_shutdown() -> None:
        try:
            if previous is not None:
                previous()
        finally:
            hook()

    state.begin_shutdown = begin_shutdown
