"""The ASGI application: REST API, probes and metrics on one port."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from ..front.http import McpHttpEndpoint
from ..front.session import Front
from ..hangar import Hangar
from ..metrics import Metrics
from . import auth_routes, config, discovery, groups, servers, system
from .auth import AuthMiddleware
from .errors import PayloadTooLargeError, envelope, install_error_handlers
from .log_follow import LogFollowers
from .schemas import add_error_envelope
from .ws import PATH as EVENTS_PATH
from .ws import EventStream, add_shutdown_hook


class TrailingSlashMiddleware:
    """Serve `/api/x/` exactly like `/api/x` instead of redirecting."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            path: str = scope["path"]
            if len(path) > 1 and path.endswith("/"):
                scope = dict(scope)
                scope["path"] = path.rstrip("/") or "/"
                raw = scope.get("raw_path")
                if isinstance(raw, bytes) and raw.endswith(b"/"):
                    scope["raw_path"] = raw.rstrip(b"/") or b"/"
        await self.app(scope, receive, send)


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
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, send_status)
        finally:
            key = (scope.get("method", ""), template_of(scope), status)
            children = self._children.get(key)
            if children is None:
                children = (self.metrics.http_requests.labels(key[0], key[1], str(status)),
                            self.metrics.http_duration.labels(key[0], key[1]))
                self._children[key] = children
            children[0].inc()
            children[1].observe(time.perf_counter() - began)


def _route_template(scope: Scope) -> str:
    # /mcp is a plain Starlette route, which leaves no "route" in the scope: name it by its path.
    route = scope.get("route")
    return getattr(route, "path", None) or ("/mcp" if scope.get("path") == "/mcp" else "<unmatched>")


def _mcp_template(scope: Scope) -> str:
    return "/mcp"


class HttpMetricsMiddleware:
    """Count requests by method, route template and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.counter = HttpCounter(metrics)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.counter.serve(self.app, scope, receive, send, _route_template)


MAX_API_BODY_BYTES = 1024 * 1024  # REST bodies are small specs; /mcp has its own limit


class ApiBodyLimitMiddleware:
    """Refuse REST request bodies over ``limit`` bytes with a 413 in the error envelope."""

    def __init__(self, app: ASGIApp, limit: int = MAX_API_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        too_large = PayloadTooLargeError(f"request body is larger than {self.limit} bytes")
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            await envelope(too_large.error_name, too_large.message, too_large.status_code)(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise too_large  # surfaces through the body parser; errors.py answers 413
            return message

        await self.app(scope, limited_receive, send)


class EnvelopeCORSMiddleware(CORSMiddleware):
    """Starlette's CORS handling, with a refused preflight answered in the error envelope."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        refused = envelope("BadRequestError", bytes(response.body).decode(), response.status_code)
        for key, value in response.headers.items():
            if key.lower().startswith("access-control-") or key.lower() == "vary":
                refused.headers[key] = value
        return refused


class HangarApp(FastAPI):
    """The REST app, with a lean path for the MCP endpoint.

    A request to exactly ``/mcp`` (GET, POST, DELETE) without an ``Origin`` header goes straight to the
    MCP endpoint, counted in the same HTTP metrics: for such a request every layer of the REST stack
    passes it through unchanged (CORS acts on Origin only, the body limit and trailing-slash layers on
    other paths, the router would pick the same endpoint), so skipping them changes nothing but the
    cost of a call. The lean path is taken only while the middleware stack consists of exactly the
    layers listed in ``LEAN_PASSTHROUGH``; a middleware added later (authentication, say) that is not
    listed there sends every request through the whole stack again, safely by default."""

    LEAN_PASSTHROUGH: frozenset[Any] = frozenset()  # filled below, once the middleware classes exist
    LEAN_METHODS = frozenset({"GET", "POST", "DELETE"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lean: bool | None = None  # decided at the first request, when the stack is complete
        self._mcp: McpHttpEndpoint | None = None
        self._counter: HttpCounter | None = None

    def openapi(self) -> dict[str, Any]:
        """FastAPI's document, plus the error envelope the routes reference (see ``error_responses``)."""
        if self.openapi_schema is None:
            self.openapi_schema = add_error_envelope(super().openapi())
        return self.openapi_schema

    def lean_mcp(self, endpoint: McpHttpEndpoint, metrics: Metrics) -> None:
        self._mcp, self._counter = endpoint, HttpCounter(metrics)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/mcp" and scope["method"] in self.LEAN_METHODS:
            if self._lean is None:
                self._lean = self._mcp is not None and all(
                    m.cls in self.LEAN_PASSTHROUGH for m in self.user_middleware)
            if self._lean and not any(k == b"origin" for k, _ in scope["headers"]):
                await self._serve_mcp(scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    async def _serve_mcp(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self._mcp is not None and self._counter is not None
        await self._counter.serve(self._mcp, scope, receive, send, _mcp_template)


def _env_list(name: str) -> list[str]:
    raw = os.environ.get(name, "*").strip() or "*"
    return [item.strip() for item in raw.split(",") if item.strip()]


def create_app(hangar: Hangar, *, manage_lifecycle: bool = True) -> HangarApp:
    """Build the app around ``hangar``. With ``manage_lifecycle`` the app's lifespan starts and
    stops Hangar."""

    front = Front(hangar)
    mcp_endpoint = McpHttpEndpoint(front)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if manage_lifecycle:
            await hangar.start()
        try:
            yield
        finally:
            mcp_endpoint.close()
            front.close()
            if manage_lifecycle:
                await hangar.aclose()

    app = HangarApp(
        title="MCP Hangar",
        version=__version__,
        description="Gateway and control plane for Model Context Protocol servers.",
        lifespan=lifespan,
        redirect_slashes=False,
    )
    metrics = Metrics(hangar)
    app.state.hangar = hangar
    app.state.metrics = metrics
    app.state.mcp = mcp_endpoint
    # Called by the server at the first shutdown signal: long-lived streams end at once instead of
    # holding the graceful shutdown open.
    app.state.begin_shutdown = mcp_endpoint.close
    app.router.routes.append(Route("/mcp", mcp_endpoint, methods=["GET", "POST", "DELETE"],
                                   include_in_schema=False))
    install_error_handlers(app)
    app.include_router(servers.router)
    app.include_router(groups.router)
    app.include_router(system.router)
    app.include_router(config.router)
    discovery.install(app)
    app.include_router(auth_routes.router)
    app.add_middleware(ApiBodyLimitMiddleware)
    origins = _env_list("MCP_CORS_ORIGINS")
    # Observability streams: the WebSocket event stream and log follow streams end at the first signal.
    metrics.observe_front(front)
    events = EventStream(hangar.event_log, metrics, hangar.loaded.config.observability,
                         produced_by=hangar.instance_id, allowed_origins=origins)
    app.router.routes.append(WebSocketRoute(EVENTS_PATH, events.endpoint))
    app.state.events = events
    app.state.log_followers = LogFollowers(hangar)
    add_shutdown_hook(app.state, events.close_all)
    add_shutdown_hook(app.state, app.state.log_followers.close_all)
    if hangar.auth.enabled:  # inside CORS, so refusals carry CORS headers; outside everything that serves
        app.add_middleware(AuthMiddleware, auth=hangar.auth)
        events.watchers.append(lambda ws, withdraw: hangar.auth.live.watch_scope(ws.scope, withdraw))
    app.add_middleware(
        EnvelopeCORSMiddleware,
        allow_origins=origins,
        allow_methods=_env_list("MCP_CORS_METHODS"),
        allow_headers=_env_list("MCP_CORS_HEADERS"),
        allow_credentials="*" not in origins,
    )
    app.add_middleware(HttpMetricsMiddleware, metrics=metrics)
    app.add_middleware(TrailingSlashMiddleware)
    app.lean_mcp(mcp_endpoint, metrics)
    return app


HangarApp.LEAN_PASSTHROUGH = frozenset({TrailingSlashMiddleware, HttpMetricsMiddleware, EnvelopeCORSMiddleware,
                                        ApiBodyLimitMiddleware})


def app_state(app: Any) -> Hangar:
    hangar: Hangar = app.state.hangar
    return hangar
