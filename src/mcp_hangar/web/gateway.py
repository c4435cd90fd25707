"""The outer ASGI app: lifespan, the MCP endpoint, the probes and the metrics; the REST API on first use.

What a gateway that serves only agents and probes needs is built at boot: the MCP front, the HTTP
metrics, the health probes. The REST API (FastAPI with its routers and models, the WebSocket event
stream) is most of the import time and memory of a boot, so it is loaded when
the first request needs it (or at boot with ``lazy_api=False``). Loading imports and builds it on a
worker thread, so MCP calls keep being answered meanwhile; requests that need it wait for it.

A request takes the lean path only where every layer of the REST stack would pass it through
unchanged: ``GET``/``POST``/``DELETE /mcp`` without an ``Origin`` header while authentication is off
(CORS acts on Origin only, the body limit and trailing-slash layers on other paths, the router would pick
the same endpoint), and ``GET`` of the probes and ``/metrics`` without an ``Origin`` header (they are
public in the permission table). Everything else goes to the REST app, which has the same routes.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.datastructures import State
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..discovery.metrics import DiscoveryMetrics
from ..front.http import McpHttpEndpoint, decode_headers
from ..front.session import Front
from ..metrics import Metrics
from . import probes

if TYPE_CHECKING:
    from ..hangar import Hangar
    from .app import HangarApp

log = logging.getLogger(__name__)

LEAN_MCP_METHODS = frozenset({"GET", "POST", "DELETE"})
JSON_HEADERS = [(b"content-type", b"application/json")]
METRICS_HEADERS = [(b"content-type", CONTENT_TYPE_LATEST.encode())]
PLAIN_PATHS = frozenset({"/health/live", "/health/ready", "/health/startup", "/metrics"})


class StatusSend:
    """An ASGI ``send`` that notes the response's status (500 until one starts). A plain callable, not a
    coroutine of its own: ``send``'s awaitable is handed back."""

    __slots__ = ("send", "status")

    def __init__(self, send: Send) -> None:
        self.send = send
        self.status = 500

    def __call__(self, message: Message) -> Awaitable[None]:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        return self.send(message)


class HttpCounter:
    """Counts HTTP requests by method, route template and status, and times them. Label children are
    kept per (method, template, status): looking them up is the costly part of counting."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def serve(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send,
                    template_of: Callable[[Scope], str]) -> None:
        """Run ``app`` on one request and count it (``template_of`` is asked once it has been routed)."""
        began = time.perf_counter()
        send_status = StatusSend(send)
        try:
            await app(scope, receive, send_status)
        finally:
            self.count(scope.get("method", ""), template_of(scope), send_status.status, began)

    def count(self, method: str, template: str, status: int, began: float) -> None:
        """Count one request answered with ``status`` (500 when no answer began), ``began`` at that
        ``time.perf_counter()``."""
        key = (method, template, status)
        children = self._children.get(key)
        if children is None:
            children = (self.metrics.http_requests.labels(method, template, str(status)),
                        self.metrics.http_duration.labels(method, template))
            self._children[key] = children
        children[0].inc()
        children[1].observe(time.perf_counter() - began)


def _has_origin(scope: Scope) -> bool:
    return any(name == b"origin" for name, _ in scope["headers"])


def _path_template(scope: Scope) -> str:
    path: str = scope["path"]
    return path  # the lean paths are their own templates


async def _send_body(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _loaded(began: float) -> None:
    log.info("REST API loaded in %.0f ms", (time.perf_counter() - began) * 1000)


class Gateway:
    """The app uvicorn serves (see the module's docstring). ``state`` is shared with the REST app, whose
    routes read ``request.app.state``."""

    def __init__(self, hangar: Hangar, *, manage_lifecycle: bool = True, lazy_api: bool = True) -> None:
        self.hangar = hangar
        self.manage_lifecycle = manage_lifecycle
        self.front = Front(hangar)
        self.mcp = McpHttpEndpoint(self.front)
        self.metrics = Metrics(hangar)
        self.metrics.observe_front(self.front)
        self.counter = HttpCounter(self.metrics)
        self.lean_mcp = not hangar.auth.enabled  # with auth on, /mcp goes through the auth middleware
        self.state = State()
        self.state.hangar = hangar
        self.state.metrics = self.metrics
        self.state.mcp = self.mcp
        self.state.discovery_metrics = DiscoveryMetrics(self.metrics.registry, hangar.bus)
        # Called by the server at the first shutdown signal: long-lived streams end at once instead of
        # holding the graceful shutdown open. The REST app adds its streams' hooks when it loads.
        self.state.begin_shutdown = self.mcp.close
        self._api: HangarApp | None = None
        self._loading: asyncio.Future[HangarApp] | None = None
        if not lazy_api:
            began = time.perf_counter()
            self._api = self._build_api()
            _loaded(began)

    @property
    def api(self) -> HangarApp | None:
        """The REST app, once loaded."""
        return self._api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path, method = scope["path"], scope["method"]
            if path == "/mcp" and self.lean_mcp and method in LEAN_MCP_METHODS:
                # The endpoint needs the headers decoded anyway: an Origin is looked for among them, and
                # only then (rarely) among the raw names, which decide (the REST stack reads those).
                headers, duplicated = decode_headers(scope["headers"])
                if "origin" not in headers or not _has_origin(scope):
                    began = time.perf_counter()  # HttpCounter.serve's work, without its coroutine
                    send_status = StatusSend(send)
                    try:
                        await self.mcp.serve(scope, receive, send_status, headers, duplicated)
                    finally:
                        self.counter.count(method, path, send_status.status, began)
                    return
            elif method == "GET" and path in PLAIN_PATHS and not _has_origin(scope):
                await self.counter.serve(self._serve_plain, scope, receive, send, _path_template)
                return
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        api = self._api
        if api is None:
            try:
                api = await self.load_api()
            except Exception:  # a broken install; said once per request, in the envelope
                log.exception("the REST API could not be loaded")
                if kind == "http":
                    body = {"error": "InternalServerError", "message": "the REST API could not be loaded",
                            "status_code": 500}
                    await _send_body(send, 500, JSON_HEADERS, orjson.dumps(body))
                return
        await api(scope, receive, send)

    async def load_api(self) -> HangarApp:
        """The REST app, built once; concurrent callers wait for the same build."""
        if self._api is not None:
            return self._api
        if self._loading is None:
            self._loading = asyncio.ensure_future(self._load_api())
        loading = self._loading
        try:
            return await asyncio.shield(loading)
        except BaseException:
            if loading.done() and self._loading is loading:
                self._loading = None  # a failed build is retried by the next request
            raise

    async def _load_api(self) -> HangarApp:
        began = time.perf_counter()
        # Imports and route analysis on a worker thread (they touch no running state); the hooks into
        # the running Hangar (event stream tap, shutdown hooks) are attached here, on the loop.
        module = await asyncio.to_thread(importlib.import_module, f"{__package__}.app")
        app: HangarApp = await asyncio.to_thread(module.build_api, self)
        module.attach_api(app, self)
        self._api = app
        _loaded(began)
        return app

    def _build_api(self) -> HangarApp:
        from . import app as module

        app = module.build_api(self)
        module.attach_api(app, self)
        return app

    async def _serve_plain(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if path == "/metrics":
            await _send_body(send, 200, METRICS_HEADERS, self.metrics.render())
            return
        if path == "/health/ready":
            status, body = await probes.ready(self.hangar)
        elif path == "/health/startup":
            status, body = probes.startup(self.hangar)
        else:
            status, body = probes.live()
        await _send_body(send, status, JSON_HEADERS, orjson.dumps(body))

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    if self.manage_lifecycle:
                        await self.hangar.start()
                except Exception as exc:  # uvicorn reports it and exits
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.mcp.close()
                self.front.close()
                if self.manage_lifecycle:
                    await self.hangar.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return
