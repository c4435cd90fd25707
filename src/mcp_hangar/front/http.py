"""The MCP front over Streamable HTTP at /mcp, both protocol eras on one endpoint.

- Modern clients (2026-07-28): stateless POSTs; the ``MCP-Protocol-Version``, ``Mcp-Method`` and
  ``Mcp-Name`` headers must agree with the body; GET and DELETE answer 405.
- Legacy clients: ``initialize`` creates a session (``Mcp-Session-Id``); later POSTs carry it; GET opens
  the session's notification stream (SSE); DELETE ends the session.

Every request first passes the DNS-rebinding checks (Host and Origin) and the body size limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import orjson
from starlette.types import Message, Receive, Scope, Send

from ..auth.guard import PRINCIPAL_SCOPE_KEY
from ..upstream.era import META_VERSION
from .inbound import ERROR_CODE_HTTP_STATUS, ROUTING_HEADERS
from .session import (
    INVALID_REQUEST,
    LEGACY_VERSIONS,
    MODERN_VERSIONS,
    PARSE_ERROR,
    REQUEST_CHANNEL,
    Front,
    FrontSession,
    JsonObject,
    error_response,
)

log = logging.getLogger(__name__)

SESSION_HEADER = "mcp-session-id"
VERSION_HEADER = "mcp-protocol-version"
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
KEEPALIVE_S = 15.0
STREAM_QUEUE = 1024
ENDED_MEMORY = 1000  # sessions ended by a withdrawn key, remembered to say why
WATCH_AFTER_S = 0.05  # a modern request running longer than this gets a task watching for its client leaving
HOSTS_REMEMBERED = 64  # Host header values already accepted (the check is then one set lookup)
_END: JsonObject = {}  # put on a session's queue to end its GET stream at once


class LegacyHttpSession(FrontSession):
    """A legacy session: lives between initialize and DELETE (or idle expiry)."""

    def __init__(self, front: Front, session_id: str) -> None:
        self.session_id = session_id
        self.queue: asyncio.Queue[JsonObject] = asyncio.Queue(maxsize=STREAM_QUEUE)
        self.streaming = False
        self.last_seen = time.monotonic()
        self.ended = False
        self.unwatch: Callable[[], None] | None = None  # auth: stop watching its key
        super().__init__(front, self._enqueue, transport="http")

    def close(self) -> None:
        super().close()
        if self.unwatch is not None:
            self.unwatch()
            self.unwatch = None
        if not self.ended:
            self.ended = True
            self._put(_END)

    async def _enqueue(self, message: JsonObject) -> None:
        self._put(message)

    def _put(self, message: JsonObject) -> None:
        if self.queue.full():  # a client that never reads loses the oldest notifications
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
        self.queue.put_nowait(message)


def _host_name(host: str) -> str:
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class McpHttpEndpoint:
    """An ASGI app serving /mcp."""

    def __init__(self, front: Front) -> None:
        self.front = front
        settings = front.hangar.loaded.config.front
        self.max_body = settings.max_body_bytes
        self.allowed_hosts = {h.lower() for h in settings.allowed_hosts}
        self.allowed_origins = {o.lower().rstrip("/") for o in settings.allowed_origins}
        self.idle_timeout = settings.session_idle_timeout_s
        self.sessions: dict[str, LegacyHttpSession] = {}
        self.withdrawn: dict[str, str] = {}  # session id -> why it was ended (its key was revoked ...)
        self.closing = False
        self._swept_at = 0.0
        self._hosts_ok: set[str] = set()
        self.watch = _DisconnectWatch()

    def close(self) -> None:
        self.closing = True
        for session in list(self.sessions.values()):
            session.close()
        self.sessions.clear()

    # ------------------------------------------------------------------ ASGI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers, duplicated = decode_headers(scope.get("headers", ()))
        await self.serve(scope, receive, send, headers, duplicated)

    async def serve(self, scope: Scope, receive: Receive, send: Send, headers: Mapping[str, str],
                    duplicated: str | None) -> None:
        """Serve one HTTP request whose headers are decoded (see ``decode_headers``)."""
        method = scope["method"]
        if headers.get("host", "") not in self._hosts_ok or "origin" in headers:  # else both checks pass
            rejection = self._check_security(headers)
            if rejection is not None:
                await _plain(send, *rejection)
                return
        if time.monotonic() - self._swept_at >= 1.0:
            self._expire_sessions()
        if method != "POST":
            await self._other(method, receive, send, headers)
            return
        # POST, inline (no coroutine of its own): a modern tools/call is the hot path
        accept = headers.get("accept", "*/*")
        if not ("application/json" in accept or "text/event-stream" in accept or "*/*" in accept
                or "application/*" in accept):
            await _plain(send, 406, "Not Acceptable: accept application/json or text/event-stream")
            return
        declared = headers.get("content-length")
        body: bytes | None = None
        if declared is None or not declared.isdigit() or int(declared) <= self.max_body:
            first = await receive()
            if first["type"] == "http.request" and not first.get("more_body"):
                body = first.get("body", b"")  # the whole body in one message: the usual case
                if len(body) > self.max_body:
                    body = None
            else:
                body = await self._read_body(receive, first)
        if body is None:
            await _plain(send, 413, f"request body larger than {self.max_body} bytes")
            return
        try:
            message = orjson.loads(body)
        except orjson.JSONDecodeError:
            await _json(send, 400, error_response(None, PARSE_ERROR, "Parse error: not valid JSON"))
            return
        if not isinstance(message, dict):
            await _json(send, 400, error_response(None, INVALID_REQUEST, "expected one JSON-RPC object "
                                                                         "(batches are not supported)"))
            return
        if not (headers.get(VERSION_HEADER) in MODERN_VERSIONS or _has_modern_meta(message)):
            await self._post_legacy(scope, receive, send, headers, message)
            return
        # A 2026-07-28 request, served here: it runs in the ASGI task itself (no task of its own), which is
        # cancelled if the client goes away; its notifications and requests ride on its own response.
        if duplicated is not None and "id" in message:
            await _json(send, 400, error_response(message.get("id"), -32020,
                                                  f"{duplicated} header appears more than once"))
            return
        session = FrontSession(self.front, None, transport="http")
        session.principal = scope.get(PRINCIPAL_SCOPE_KEY)
        stream = None
        if "text/event-stream" in accept:
            stream = _LazyStream(send)
            session.channel = stream.event
        watched = None
        if "id" in message:  # a request (not a notification): cancelled if its client goes away
            loop = asyncio.get_running_loop()
            current = asyncio.current_task(loop)
            if current is not None:
                watched = self.watch.enter(current, receive, loop)
        try:
            response = await session.handle(message, headers=headers)
        except asyncio.CancelledError:
            if watched is not None and watched.gone:
                watched.task.uncancel()
                return  # the client went away: nothing to answer
            raise
        finally:
            if watched is not None:
                self.watch.leave(watched)
        if response is None:
            await _plain(send, 202, "")
        elif stream is not None and stream.started:
            await stream.finish(200, response)
        else:  # _json's work, without its coroutine
            payload = orjson.dumps(response)
            status = 200 if "error" not in response else _modern_status(response)
            await send({"type": "http.response.start", "status": status,
                        "headers": [_JSON_TYPE, (b"content-length", str(len(payload)).encode())]})
            await send({"type": "http.response.body", "body": payload})

    async def _other(self, method: str, receive: Receive, send: Send, headers: Mapping[str, str]) -> None:
        if method == "GET":
            await self._get(receive, send, headers)
        elif method == "DELETE":
            await self._delete(send, headers)
        else:
            await _plain(send, 405, "Method Not Allowed", {"allow": "GET, POST, DELETE"})

    def _check_security(self, headers: Mapping[str, str]) -> tuple[int, str] | None:
        raw_host = headers.get("host", "")
        if raw_host not in self._hosts_ok and "*" not in self.allowed_hosts:
            host = raw_host.lower()
            name = _host_name(host)
            if name not in LOOPBACK_HOSTS and host not in self.allowed_hosts and name not in self.allowed_hosts:
                return 421, f"Invalid Host header: {host!r}"
            if len(self._hosts_ok) < HOSTS_REMEMBERED:  # the settings never change while this endpoint lives
                self._hosts_ok.add(raw_host)
        origin = headers.get("origin")
        if origin is not None and "*" not in self.allowed_origins:
            value = origin.lower().rstrip("/")
            parts = urlsplit(value)
            if (parts.hostname or "") not in LOOPBACK_HOSTS and value not in self.allowed_origins:
                return 403, f"Invalid Origin header: {origin!r}"
        return None

    def _expire_sessions(self) -> None:
        """Forget idle sessions; the whole table is swept at most once a second (the session a request
        names is checked on every request, in ``_post_legacy``)."""
        now = time.monotonic()
        if now - self._swept_at < 1.0:
            return
        self._swept_at = now
        for sid, session in list(self.sessions.items()):
            if not session.streaming and now - session.last_seen > self.idle_timeout:
                session.close()
                self.sessions.pop(sid, None)

    # ------------------------------------------------------------------ POST

    async def _read_body(self, receive: Receive, message: Message) -> bytes | None:
        """The rest of a body sent in several messages (``message`` is the first)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            if message["type"] == "http.disconnect":
                return b""
            body: bytes = message.get("body", b"")
            size += len(body)
            if size > self.max_body:
                return None
            chunks.append(body)
            if not message.get("more_body"):
                return b"".join(chunks)
            message = await receive()

    async def _post_legacy(self, scope: Scope, receive: Receive, send: Send, headers: Mapping[str, str],
                           message: JsonObject) -> None:
        version = headers.get(VERSION_HEADER)
        if version is not None and version not in LEGACY_VERSIONS:
            await _json(send, 400, error_response(message.get("id"), INVALID_REQUEST,
                                                  f"Unsupported protocol version: {version}"))
            return
        if message.get("method") == "initialize":
            session_id = secrets.token_hex(16)
            session = LegacyHttpSession(self.front, session_id)
            session.principal = scope.get(PRINCIPAL_SCOPE_KEY)
            response = await session.handle(message)
            if response is not None and "result" in response:
                self.sessions[session_id] = session
                session.unwatch = self.front.hangar.auth.live.watch_scope(
                    scope, lambda reason: self._withdraw(session, reason))
                await _json(send, 200, response, {SESSION_HEADER: session_id})
            else:
                session.close()
                await _json(send, 400, response or error_response(None, INVALID_REQUEST, "bad initialize"))
            return
        given = headers.get(SESSION_HEADER)
        if not given:
            await _json(send, 400, error_response(message.get("id"), INVALID_REQUEST,
                                                  "Bad Request: Missing session ID"))
            return
        existing = self.sessions.get(given)
        if existing is not None and not existing.streaming and \
                time.monotonic() - existing.last_seen > self.idle_timeout:
            existing.close()
            self.sessions.pop(given, None)
            existing = None
        if existing is None:
            why = self.withdrawn.get(given)
            text = "Session not found" if why is None else f"Session ended: {why}; initialize a new session"
            await _json(send, 404, error_response(message.get("id"), INVALID_REQUEST, text))
            return
        principal = scope.get(PRINCIPAL_SCOPE_KEY)
        if existing.principal is not None:
            if getattr(principal, "principal_id", None) != existing.principal.principal_id:
                # a session belongs to the principal whose key opened it
                await _json(send, 403, error_response(message.get("id"), -32003, "this session belongs to "
                                                                                 "another principal"))
                return
            existing.principal = principal  # resolved now: roles changed since are in effect
        existing.last_seen = time.monotonic()
        await _serve_legacy(existing, send, headers, message)

    def _withdraw(self, session: LegacyHttpSession, reason: str) -> None:
        """End a session whose key or principal lost its access: refused from now on, GET stream closed."""
        if self.sessions.pop(session.session_id, None) is None:
            return
        self.withdrawn[session.session_id] = reason
        if len(self.withdrawn) > ENDED_MEMORY:
            self.withdrawn.pop(next(iter(self.withdrawn)))
        log.info("MCP session %s ended: %s", session.session_id[:8], reason)
        session.close()

    # ------------------------------------------------------------------ GET / DELETE

    async def _legacy_session(self, send: Send, headers: Mapping[str, str]) -> LegacyHttpSession | None:
        """The session a GET or DELETE names; None after answering 405 (no session) or 404 (unknown)."""
        session_id = headers.get(SESSION_HEADER)
        if headers.get(VERSION_HEADER) in MODERN_VERSIONS or not session_id:
            await _plain(send, 405, "Method Not Allowed", {"allow": "POST"})
            return None
        session = self.sessions.get(session_id)
        if session is None:
            await _plain(send, 404, "Session not found")
        return session

    async def _get(self, receive: Receive, send: Send, headers: Mapping[str, str]) -> None:
        session = await self._legacy_session(send, headers)
        if session is None:
            return
        if "text/event-stream" not in headers.get("accept", ""):
            await _plain(send, 406, "Not Acceptable: the GET stream is text/event-stream")
            return
        if session.streaming:
            await _plain(send, 409, "Conflict: this session already has a GET stream")
            return
        session.streaming = True
        disconnected = asyncio.Event()

        async def watch_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            disconnected.set()

        watcher = asyncio.get_running_loop().create_task(watch_disconnect())
        try:
            await send({"type": "http.response.start", "status": 200, "headers": _sse_headers()})
            await send({"type": "http.response.body", "body": b": stream open\n\n", "more_body": True})
            idle = 0.0
            while not self.closing and not disconnected.is_set() and session.session_id in self.sessions:
                try:
                    message = await asyncio.wait_for(session.queue.get(), 0.5)
                except TimeoutError:
                    idle += 0.5
                    if idle >= KEEPALIVE_S:
                        idle = 0.0
                        await send({"type": "http.response.body", "body": b": ping\n\n", "more_body": True})
                    continue
                if message is _END:
                    why = self.withdrawn.get(session.session_id)
                    if why is not None:
                        await send({"type": "http.response.body", "body": f": session ended: {why}\n\n".encode(),
                                    "more_body": True})
                    break
                idle = 0.0
                await send({"type": "http.response.body", "body": _sse_event(message), "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            pass  # the client went away
        finally:
            watcher.cancel()
            session.streaming = False
            session.last_seen = time.monotonic()

    async def _delete(self, send: Send, headers: Mapping[str, str]) -> None:
        session = await self._legacy_session(send, headers)
        if session is None:
            return
        self.sessions.pop(session.session_id, None)
        session.close()
        await _plain(send, 200, "")


class _LazyStream:
    """An HTTP response that stays JSON unless something must be sent before the answer: then it
    becomes an SSE stream carrying the notifications and requests, and finally the answer."""

    __slots__ = ("_extra", "_lock", "_send", "started")

    def __init__(self, send: Send, extra_headers: dict[str, str] | None = None) -> None:
        self._send = send
        self._extra = extra_headers or {}
        self.started = False
        self._lock: asyncio.Lock | None = None  # created by the first event: most answers come alone

    async def event(self, message: JsonObject) -> None:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if not self.started:
                self.started = True
                headers = _sse_headers() + [(k.encode(), v.encode()) for k, v in self._extra.items()]
                await self._send({"type": "http.response.start", "status": 200, "headers": headers})
            await self._send({"type": "http.response.body", "body": _sse_event(message), "more_body": True})

    async def finish(self, status: int, message: JsonObject) -> None:
        if self.started:
            assert self._lock is not None
            async with self._lock:
                await self._send({"type": "http.response.body", "body": _sse_event(message), "more_body": False})
        else:
            await _json(self._send, status, message, self._extra)


class _Watched:
    """A modern request in flight whose client may go away (see ``_DisconnectWatch``)."""

    __slots__ = ("gone", "key", "receive", "running", "since", "task", "watcher")

    def __init__(self, key: int, task: asyncio.Task[Any], receive: Receive, since: float) -> None:
        self.key, self.task, self.receive, self.since = key, task, receive, since
        self.running = True
        self.gone = False
        self.watcher: asyncio.Task[None] | None = None

    async def watch(self) -> None:
        while (await self.receive())["type"] != "http.disconnect":
            pass
        if self.running:  # never cancel an answer being sent
            self.gone = True
            self.task.cancel()


class _DisconnectWatch:
    """In the 2026-07-28 era a client that closes the response has cancelled the request.

    Noticing that takes a task waiting on ``receive()``. Most requests are answered long before anyone
    could tell, so a request gets its watcher only once it has run ``WATCH_AFTER_S``: one timer for the
    whole endpoint looks at the requests in flight and starts the watchers due. A client that left
    earlier is still seen then (``receive()`` reports the disconnect to whoever asks next)."""

    def __init__(self) -> None:
        self.in_flight: dict[int, _Watched] = {}
        self._ids = itertools.count()
        self._timer: asyncio.TimerHandle | None = None

    def enter(self, task: asyncio.Task[Any], receive: Receive,
              loop: asyncio.AbstractEventLoop | None = None) -> _Watched:
        loop = loop or asyncio.get_running_loop()
        key = next(self._ids)
        watched = self.in_flight[key] = _Watched(key, task, receive, loop.time())
        if self._timer is None:
            self._timer = loop.call_later(WATCH_AFTER_S, self._start_due)
        return watched

    def leave(self, watched: _Watched) -> None:
        del self.in_flight[watched.key]
        watched.running = False
        if watched.watcher is not None:
            watched.watcher.cancel()

    def _start_due(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        due = loop.time() - WATCH_AFTER_S
        waiting = None
        for watched in self.in_flight.values():
            if watched.watcher is not None:
                continue
            if watched.since <= due:
                watched.watcher = loop.create_task(watched.watch())
            else:
                waiting = watched.since if waiting is None else min(waiting, watched.since)
        if waiting is not None:
            self._timer = loop.call_at(waiting + WATCH_AFTER_S, self._start_due)


async def _serve_legacy(session: FrontSession, send: Send, headers: Mapping[str, str], message: JsonObject) -> None:
    """Run one request of a legacy session; its progress notifications and client requests ride on its
    own response. It runs in the ASGI task itself (no task of its own). (A 2026-07-28 request is served
    inline in ``McpHttpEndpoint.__call__``, where a client that goes away cancels it.)"""
    stream = _LazyStream(send)
    token = REQUEST_CHANNEL.set(stream.event if "text/event-stream" in headers.get("accept", "") else None)
    try:
        response = await session.handle(message, headers=headers)
    finally:
        REQUEST_CHANNEL.reset(token)
    if response is None:
        await _plain(send, 202, "")
    else:
        await stream.finish(200, response)


def _has_modern_meta(message: JsonObject) -> bool:
    params = message.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    return isinstance(meta, dict) and META_VERSION in meta


def decode_headers(raw: Any) -> tuple[dict[str, str], str | None]:
    """The request's headers by lower-case name (the last copy wins), and the name of a routing header
    sent more than once (first- and last-copy readers would disagree), if any. Values are trimmed:
    optional whitespace around a header value is not part of it (RFC 9110)."""
    if not isinstance(raw, (list, tuple)):
        raw = list(raw)
    headers: dict[str, str] = {}
    for k, v in raw:
        headers[k.decode("latin-1").lower()] = v.decode("latin-1").strip()
    if len(headers) == len(raw):  # no name came twice (the usual case)
        return headers, None
    seen: set[str] = set()
    for k, _ in raw:
        name = k.decode("latin-1").lower()
        if name in seen and name in ROUTING_HEADERS:
            return headers, name
        seen.add(name)
    return headers, None


def _modern_status(response: JsonObject) -> int:
    error = response.get("error")
    return ERROR_CODE_HTTP_STATUS.get(error.get("code", 0), 200) if isinstance(error, dict) else 200


def _sse_headers() -> list[tuple[bytes, bytes]]:
    return [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache, no-transform"),
            (b"x-accel-buffering", b"no"), (b"connection", b"keep-alive")]


def _sse_event(message: JsonObject) -> bytes:
    return b"event: message\ndata: " + orjson.dumps(message) + b"\n\n"


_JSON_TYPE = (b"content-type", b"application/json")  # a JSON answer is whole: no proxy-buffering hint


async def _json(send: Send, status: int, payload: Any, extra: dict[str, str] | None = None) -> None:
    body = orjson.dumps(payload)
    headers = [_JSON_TYPE, (b"content-length", str(len(body)).encode())]
    if extra:
        headers += [(k.encode(), v.encode()) for k, v in extra.items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _plain(send: Send, status: int, text: str, extra: dict[str, str] | None = None) -> None:
    body = text.encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
