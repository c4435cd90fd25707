"""The REST app: routes, error handlers and middleware, served behind the gateway (`gateway.py`)."""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from ..hangar import Hangar
from ..metrics import Metrics
from . import auth_routes, config, discovery, groups, servers, system
from .auth import AuthMiddleware
from .errors import PayloadTooLargeError, envelope, install_error_handlers
from .gateway import Gateway, HttpCounter
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


def _route_template(scope: Scope) -> str:
    # /mcp is a plain Starlette route, which leaves no "route" in the scope: name it by its path.
    route = scope.get("route")
    return getattr(route, "path", None) or ("/mcp" if scope.get("path") == "/mcp" else "<unmatched>")


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
    """The REST app (served behind the gateway, ``gateway.py``, which owns the lifespan)."""

    def openapi(self) -> dict[str, Any]:
        """FastAPI's document, plus the error envelope the routes reference (see ``error_responses``)."""
        if self.openapi_schema is None:
            self.openapi_schema = add_error_envelope(super().openapi())
        return self.openapi_schema


def _env_list(name: str) -> list[str]:
    raw = os.environ.get(name, "*").strip() or "*"
    return [item.strip() for item in raw.split(",") if item.strip()]


def create_app(hangar: Hangar, *, manage_lifecycle: bool = True) -> Gateway:
    """The served app around ``hangar`` with the REST API built now (``serve`` loads it on first use).
    With ``manage_lifecycle`` the app's lifespan starts and stops Hangar."""
    return Gateway(hangar, manage_lifecycle=manage_lifecycle, lazy_api=False)


def build_api(gateway: Gateway) -> HangarApp:
    """The REST app: routes, error handlers and middleware. Touches no running state (the gateway may
    build it on a worker thread); ``attach_api`` hooks it into the running Hangar."""
    hangar = gateway.hangar
    app = HangarApp(
        title="MCP Hangar",
        version=__version__,
        description="Gateway and control plane for Model Context Protocol servers.",
        redirect_slashes=False,
    )
    app.state = gateway.state  # one state for both: routes read request.app.state
    app.router.routes.append(Route("/mcp", gateway.mcp, methods=["GET", "POST", "DELETE"],
                                   include_in_schema=False))
    install_error_handlers(app)
    app.include_router(servers.router)
    app.include_router(groups.router)
    app.include_router(system.router)
    app.include_router(config.router)
    app.include_router(discovery.router)
    app.include_router(auth_routes.router)
    app.add_middleware(ApiBodyLimitMiddleware)
    if hangar.auth.enabled:  # inside CORS, so refusals carry CORS headers; outside everything that serves
        app.add_middleware(AuthMiddleware, auth=hangar.auth)
    origins = _env_list("MCP_CORS_ORIGINS")
    app.add_middleware(
        EnvelopeCORSMiddleware,
        allow_origins=origins,
        allow_methods=_env_list("MCP_CORS_METHODS"),
        allow_headers=_env_list("MCP_CORS_HEADERS"),
        allow_credentials="*" not in origins,
    )
    app.add_middleware(HttpMetricsMiddleware, metrics=gateway.metrics)
    app.add_middleware(TrailingSlashMiddleware)
    return app


def attach_api(app: HangarApp, gateway: Gateway) -> None:
    """Hook the REST app's streams into the running Hangar: the WebSocket event stream (a tap on the
    event log) and the log follow streams, both ended at the first shutdown signal."""
    hangar = gateway.hangar
    events = EventStream(hangar.event_log, gateway.metrics, hangar.loaded.config.observability,
                         produced_by=hangar.instance_id, allowed_origins=_env_list("MCP_CORS_ORIGINS"))
    app.router.routes.append(WebSocketRoute(EVENTS_PATH, events.endpoint))
    app.state.events = events
    app.state.log_followers = LogFollowers(hangar)
    add_shutdown_hook(app.state, events.close_all)
    add_shutdown_hook(app.state, app.state.log_followers.close_all)
    if hangar.auth.enabled:
        events.watchers.append(lambda ws, withdraw: hangar.auth.live.watch_scope(ws.scope, withdraw))


def app_state(app: Any) -> Hangar:
    hangar: Hangar = app.state.hangar
    return hangar
