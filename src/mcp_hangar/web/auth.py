"""Authentication and authorization at the HTTP edge, for every route, ``/mcp`` and the WebSocket.

The middleware looks the request up in the permission table (``security.py``), authenticates the key
(``X-API-Key``, or the configured header; ``Authorization: Bearer`` on ``/mcp``; ``?api_key=`` on the
WebSocket, which browsers cannot give headers), checks the permission, charges REST mutations to the
principal's bucket, and leaves the principal in the scope (``hangar.principal``) for ``/mcp``.
Refusals use the error envelope; a WebSocket is refused before it is accepted.
"""

from __future__ import annotations

from urllib.parse import parse_qs

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from ..auth.guard import PRINCIPAL_SCOPE_KEY
from ..auth.live import GRANT_SCOPE_KEY
from ..auth.service import AuthService
from ..errors import HangarError, RateLimitExceeded
from .errors import retry_after
from .security import AUTHENTICATED, PUBLIC, WEBSOCKET, RouteTable

MUTATIONS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
WS_POLICY_VIOLATION = 1008


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return str(value.decode("latin-1").strip())
    return None


def _query_key(scope: Scope) -> str | None:
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    values = query.get("api_key") or query.get("token")
    return values[0] if values else None


def refusal_headers(exc: HangarError) -> list[tuple[bytes, bytes]]:
    headers = [(b"content-type", b"application/json")]
    if isinstance(exc, RateLimitExceeded):
        headers.append((b"retry-after", retry_after(exc.retry_after_s).encode()))
    elif exc.status_code == 401:
        headers.append((b"www-authenticate", b'Bearer realm="mcp-hangar"'))
    return headers


class AuthMiddleware:
    """Deny by default: a request whose route is not in the table is refused once authenticated."""

    def __init__(self, app: ASGIApp, auth: AuthService, table: RouteTable | None = None) -> None:
        self.app = app
        self.auth = auth
        self.table = table or RouteTable()
        self.header = auth.settings.api_key.header_name.lower().encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        method = WEBSOCKET if kind == "websocket" else scope["method"]
        path: str = scope["path"]
        if kind == "http" and method == "OPTIONS":  # CORS preflights carry no credentials
            await self.app(scope, receive, send)
            return
        found = self.table.match(method, path)
        if found is not None and found[0].permission == PUBLIC:
            await self.app(scope, receive, send)
            return
        surface = "websocket" if kind == "websocket" else ("mcp" if path == "/mcp" else "rest")
        try:
            principal, key = await self.auth.authenticate_key(self._key(scope, path, kind), _client(scope),
                                                              surface)
            target = f"{method} {found[0].path if found else path}"
            if found is None:
                self.auth.refuse_undeclared(principal, surface, target)
            assert found is not None
            rule, params = found
            permission = None if rule.permission == AUTHENTICATED else rule.permission
            resource = self.table.resource(rule, params)
            if permission is not None:
                self.auth.authorize(principal, permission, resource, surface, target)
            if kind == "http" and method in MUTATIONS and path.startswith("/api/"):
                self.auth.charge_mutation(principal)
        except HangarError as exc:
            await _refuse(scope, receive, send, exc)
            return
        scope[PRINCIPAL_SCOPE_KEY] = principal
        # What let it in, for connections that stay open (the WebSocket, a legacy MCP session): see auth.live.
        scope[GRANT_SCOPE_KEY] = (key, principal.principal_id, permission, resource)
        await self.app(scope, receive, send)

    def _key(self, scope: Scope, path: str, kind: str) -> str | None:
        key = _header(scope, self.header)
        if key:
            return key
        if path == "/mcp":
            authorization = _header(scope, b"authorization") or ""
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
        if kind == "websocket":
            return _query_key(scope)
        return None


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


async def _refuse(scope: Scope, receive: Receive, send: Send, exc: HangarError) -> None:
    body = orjson.dumps(exc.envelope())
    headers = [*refusal_headers(exc), (b"content-length", str(len(body)).encode())]
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": exc.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    message = await receive()  # websocket.connect
    if message.get("type") != "websocket.connect":
        return
    if "websocket.http.response" in scope.get("extensions", {}):
        await send({"type": "websocket.http.response.start", "status": exc.status_code, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": WS_POLICY_VIOLATION, "reason": exc.error_name})
