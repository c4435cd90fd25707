"""The ``remote`` upstream: an MCP server reached over Streamable HTTP, in either protocol era.

The era is probed once: a modern ``server/discover`` first; a 400/404/405 (or an error that is not a
modern one) means legacy, so ``initialize`` follows and the session id is kept. Responses may be JSON
or an SSE stream carrying notifications (and, in the legacy era, server-to-client requests) before the
response. The client's own credentials are never forwarded: each remote gets its configured ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import ssl
from collections.abc import Callable
from typing import Any

import httpx
import orjson

from .. import tracing
from ..errors import (
    McpServerStartError,
    UpstreamCrashedError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamRpcError,
    UpstreamTimeoutError,
    ValidationError,
)
from .base import (
    CLIENT_NAME,
    LEGACY_PROTOCOL_VERSION,
    JsonObject,
    NotificationHandler,
    RequestHandler,
    answer_server_request,
)
from .era import MODERN_VERSION, prepare_params

log = logging.getLogger(__name__)

NAME_BEARING = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
RECONNECT_ATTEMPTS = 3


def _auth_headers(auth: dict[str, Any] | None) -> tuple[dict[str, str], httpx.Auth | None]:
    if not auth:
        return {}, None
    kind = auth.get("type")
    if kind == "bearer":
        return {"authorization": f"Bearer {auth.get('token') or auth.get('bearer_token') or ''}"}, None
    if kind == "api_key":
        return {str(auth.get("header_name") or "X-API-Key"): str(auth.get("key") or auth.get("api_key") or "")}, None
    if kind == "basic":
        return {}, httpx.BasicAuth(str(auth.get("username") or ""), str(auth.get("password") or ""))
    raise ValidationError(f"auth.type must be bearer, api_key or basic, not {kind!r}")


class RemoteUpstream:
    """One remote MCP endpoint."""

    def __init__(
        self,
        server_id: str,
        endpoint: str,
        *,
        headers: dict[str, str],
        auth: dict[str, Any] | None,
        tls: dict[str, Any] | None,
        connect_timeout: float,
        read_timeout: float,
        max_message_bytes: int,
        on_log: Callable[[str], None],
        on_notification: NotificationHandler | None = None,
        on_request: RequestHandler | None = None,
        client_version: str = "0",
        ssrf_trusted: list[str] | None = None,
        era: str = "auto",
    ) -> None:
        self.server_id = server_id
        self.endpoint = endpoint
        auth_headers, basic = _auth_headers(auth)
        self._headers = {**headers, **auth_headers}
        verify: ssl.SSLContext | bool = True
        if tls:
            if tls.get("verify") is False or tls.get("verify_ssl") is False:
                verify = False
            elif tls.get("ca_cert_path"):
                verify = ssl.create_default_context(cafile=str(tls["ca_cert_path"]))
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout), verify=verify, auth=basic,
            follow_redirects=False, limits=httpx.Limits(max_keepalive_connections=32, max_connections=128))
        self._max = max_message_bytes
        self._on_log = on_log
        self._on_notification = on_notification
        self._on_request = on_request
        self._client_version = client_version
        self._ssrf_trusted = ssrf_trusted
        self._wanted_era = era
        self._ids = itertools.count(1)
        self._session_id: str | None = None
        self._exit_callback: Callable[[int | None, str], None] | None = None
        self.era: str | None = None
        self.broken: UpstreamError | None = None  # HTTP has no connection to lose
        self.protocol_version: str | None = None
        self.server_info: JsonObject = {}
        self.capabilities: JsonObject = {}
        self.instructions: str | None = None

    @property
    def pid(self) -> int | None:
        return None

    def set_exit_callback(self, callback: Callable[[int | None, str], None]) -> None:
        self._exit_callback = callback

    # ------------------------------------------------------------------ lifecycle

    async def start(self, timeout: float) -> None:
        try:
            async with asyncio.timeout(timeout):
                if self._ssrf_trusted is not None:  # re-checked at connect time (DNS may have changed)
                    from .ssrf import check_endpoint_address

                    await asyncio.to_thread(check_endpoint_address, self.endpoint, self._ssrf_trusted)
                await self._probe()
        except TimeoutError:
            await self.close()
            raise McpServerStartError(f"no answer from {self.endpoint} within {timeout:g} s") from None
        except ValidationError as exc:
            await self.close()
            raise McpServerStartError(exc.message) from None
        except _Unreachable as exc:
            await self.close()
            raise McpServerStartError(f"{self.endpoint} is unreachable: {exc}") from None
        except UpstreamError as exc:
            await self.close()
            raise McpServerStartError(f"cannot connect to {self.endpoint}: {exc.message}") from None

    async def _probe(self) -> None:
        if self._wanted_era == "legacy":
            await self._initialize()
            return
        try:
            result = await self._exchange("server/discover", {}, modern=True, probing=True)
            versions = result.get("supportedVersions")
            if isinstance(versions, list) and MODERN_VERSION in versions:
                self.era, self.protocol_version = "modern", MODERN_VERSION
                caps, meta = result.get("capabilities"), result.get("_meta")
                self.capabilities = caps if isinstance(caps, dict) else {}
                info = meta.get("io.modelcontextprotocol/serverInfo") if isinstance(meta, dict) else None
                self.server_info = info if isinstance(info, dict) else {}
                self.instructions = result.get("instructions") if isinstance(result.get("instructions"), str) else None
                return
        except _NotModern:
            pass
        except UpstreamRpcError:
            pass  # a legacy server answering an unknown method
        await self._initialize()

    async def _initialize(self) -> None:
        self.era = "legacy"
        self._session_id = None
        result = await self._exchange("initialize", {
            "protocolVersion": LEGACY_PROTOCOL_VERSION, "capabilities": {},
            "clientInfo": {"name": CLIENT_NAME, "version": self._client_version}}, modern=False)
        self.protocol_version = str(result.get("protocolVersion") or LEGACY_PROTOCOL_VERSION)
        info, caps = result.get("serverInfo"), result.get("capabilities")
        self.server_info = info if isinstance(info, dict) else {}
        self.capabilities = caps if isinstance(caps, dict) else {}
        await self.notify("notifications/initialized")

    async def close(self, grace: float = 1.5) -> int | None:
        if self.era == "legacy" and self._session_id:
            with contextlib.suppress(httpx.HTTPError):
                await self._client.delete(self.endpoint, headers=self._request_headers(None, None), timeout=2)
        await self._client.aclose()
        return None

    # ------------------------------------------------------------------ messages

    def _request_headers(
        self, method: str | None, params: JsonObject | None, modern: bool | None = None
    ) -> dict[str, str]:
        headers = {**self._headers, "accept": "application/json, text/event-stream"}
        if self.era == "modern" if modern is None else modern:
            headers["mcp-protocol-version"] = MODERN_VERSION
            if method:
                headers["mcp-method"] = method
                key = NAME_BEARING.get(method)
                if key and params and isinstance(params.get(key), str):
                    headers["mcp-name"] = params[key]
        else:
            if self.protocol_version:
                headers["mcp-protocol-version"] = self.protocol_version
            if self._session_id:
                headers["mcp-session-id"] = self._session_id
        return headers

    def _envelope(self, params: JsonObject | None) -> JsonObject:
        return prepare_params(params, "modern", self._client_version) or {}

    async def request(self, method: str, params: JsonObject | None, timeout: float) -> JsonObject:
        try:
            async with asyncio.timeout(timeout):
                return await self._request_with_retry(method, params)
        except TimeoutError:
            raise UpstreamTimeoutError(f"'{method}' got no answer within {timeout:g} s") from None

    async def _request_with_retry(self, method: str, params: JsonObject | None) -> JsonObject:
        for attempt in range(RECONNECT_ATTEMPTS):
            try:
                return await self._exchange(method, params, modern=self.era == "modern")
            except _SessionExpired:
                await self._initialize()  # the remote forgot our session: one new handshake
            except _Unreachable as exc:
                if attempt == RECONNECT_ATTEMPTS - 1:
                    raise UpstreamCrashedError(f"{self.endpoint} is unreachable: {exc}") from None
                await asyncio.sleep(min(2.0, 0.2 * 2**attempt))
        raise UpstreamCrashedError(f"{self.endpoint}: the session could not be re-established")

    async def notify(self, method: str, params: JsonObject | None = None) -> None:
        message: JsonObject = {"jsonrpc": "2.0", "method": method}
        modern = self.era == "modern"
        if params is not None or modern:
            message["params"] = self._envelope(params) if modern else prepare_params(params, "legacy", "")
        with contextlib.suppress(httpx.HTTPError):
            await self._client.post(self.endpoint, content=orjson.dumps(message),
                                    headers={**self._request_headers(method, params),
                                             "content-type": "application/json"})

    async def _exchange(self, method: str, params: JsonObject | None, *, modern: bool,
                        probing: bool = False) -> JsonObject:
        request_id = next(self._ids)
        body: JsonObject = {"jsonrpc": "2.0", "id": request_id, "method": method}
        sent = prepare_params(params, "modern" if modern else "legacy", self._client_version)
        if sent is not None:
            body["params"] = sent
        headers = {**self._request_headers(method, params, modern), "content-type": "application/json"}
        if tracing.ENABLED:
            tracing.inject_headers(headers)
        try:
            async with self._client.stream("POST", self.endpoint, content=orjson.dumps(body),
                                           headers=headers) as response:
                if method == "initialize" and response.headers.get("mcp-session-id"):
                    self._session_id = response.headers["mcp-session-id"]
                if response.status_code == 404 and not modern and self._session_id and method != "initialize":
                    raise _SessionExpired()
                kind = response.headers.get("content-type", "")
                if probing and response.status_code in (400, 404, 405) and "json" not in kind:
                    raise _NotModern()
                if "text/event-stream" in kind:
                    return await self._read_sse(response, request_id)
                raw = await response.aread()
                if len(raw) > self._max:
                    raise UpstreamProtocolError(f"response larger than {self._max} bytes (max_response_bytes)")
                if response.status_code >= 400 and "json" not in kind:
                    if probing:
                        raise _NotModern()
                    raise UpstreamProtocolError(f"HTTP {response.status_code} from {self.endpoint}")
                try:
                    message = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    if probing:
                        raise _NotModern() from None
                    raise UpstreamProtocolError(f"{self.endpoint} answered with something that is not JSON") from None
                return self._result_of(message, probing)
        except httpx.TimeoutException:
            raise UpstreamTimeoutError(f"'{method}' to {self.endpoint} timed out") from None
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            raise _Unreachable(str(exc) or type(exc).__name__) from None

    def _result_of(self, message: Any, probing: bool = False) -> JsonObject:
        if not isinstance(message, dict):
            raise UpstreamProtocolError("the remote answered with a JSON value that is not a JSON-RPC object")
        if "error" in message:
            error = message["error"] if isinstance(message["error"], dict) else {"code": -32603}
            if probing and error.get("code") in (-32600, -32601) and not isinstance(error.get("data"), dict):
                # a legacy server rejecting the modern envelope or method
                raise _NotModern()
            raise UpstreamRpcError(f"upstream error: {error.get('message') or 'error'}", error)
        result = message.get("result")
        if not isinstance(result, dict):
            raise UpstreamProtocolError("the remote sent a response without result")
        return result

    async def _read_sse(self, response: httpx.Response, request_id: int) -> JsonObject:
        data: list[str] = []
        size = 0
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                chunk = line[5:].lstrip(" ")
                size += len(chunk)
                if size > self._max:
                    raise UpstreamProtocolError(f"event larger than {self._max} bytes (max_response_bytes)")
                data.append(chunk)
                continue
            if line or not data:
                continue
            payload, data, size = "\n".join(data), [], 0
            try:
                message = orjson.loads(payload)
            except orjson.JSONDecodeError:
                raise UpstreamProtocolError("the remote sent an SSE event that is not JSON") from None
            if not isinstance(message, dict):
                continue
            if "method" in message and "id" not in message:
                if self._on_notification is not None:
                    self._on_notification(message)
            elif "method" in message:
                asyncio.get_running_loop().create_task(self._answer(message))
            elif message.get("id") == request_id:
                return self._result_of(message)
        raise UpstreamCrashedError(f"{self.endpoint} closed the stream before answering")

    async def _answer(self, message: JsonObject) -> None:
        response = await answer_server_request(message, self._on_request)
        with contextlib.suppress(httpx.HTTPError):
            await self._client.post(self.endpoint, content=orjson.dumps(response),
                                    headers={**self._request_headers(None, None), "content-type": "application/json"})


class _NotModern(Exception):
    """The probe met a legacy server."""


class _SessionExpired(Exception):
    """A legacy remote answered 404: our session is gone."""


class _Unreachable(Exception):
    """A connection-level failure worth a bounded retry."""
