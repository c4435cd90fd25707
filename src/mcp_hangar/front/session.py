"""The transport-independent MCP front: one dispatcher for both protocol eras.

A ``FrontSession`` takes decoded JSON-RPC messages and returns responses; the stdio and HTTP
transports only move bytes. Results from upstreams are relayed as they came, only names change.

Eras: a legacy client sends ``initialize`` first and its session keeps that era; a modern client
(2026-07-28) sends ``server/discover`` or any request carrying the per-request ``_meta`` envelope and
has no session state. One stdio connection serves one era, as the Python SDK's servers do.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import contextvars
import itertools
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

import orjson

from .. import __version__, tracing
from ..auth.guard import Guard, as_error_data
from ..callers import CAPABILITY_OF, Caller
from ..errors import HangarError, McpServerNotFoundError, UpstreamRpcError, UpstreamTimeoutError
from ..upstream.era import META_CAPABILITIES, META_LOG_LEVEL, META_VERSION
from .catalog import MANAGEMENT, Catalog
from .features import FeatureError, Features, map_uri
from .inbound import accepted_modern, load_sdk, param_header_rejection, sdk, sdk_loaded
from .management import MANAGEMENT_TOOLS, Management

if TYPE_CHECKING:
    from ..auth.permissions import Principal
    from ..groups import Group
    from ..hangar import Hangar
    from ..supervisor import ManagedServer

log = logging.getLogger(__name__)

JsonObject = dict[str, Any]
Era = Literal["legacy", "modern"]

LEGACY_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
LATEST_LEGACY = "2025-11-25"
MODERN_VERSIONS = ("2026-07-28",)
META_SERVER_INFO = "io.modelcontextprotocol/serverInfo"
SERVER_INFO = {"name": "mcp-hangar", "version": __version__}
INSTRUCTIONS = (
    "MCP Hangar aggregates several MCP servers. Upstream tools are named <server><separator><tool>; "
    "hangar_* tools manage the fleet (hangar_status explains servers that are not ready)."
)
PAGE_SIZE = 500
_CALL_KEYS = frozenset({"name", "arguments", "_meta"})  # the fields of tools/call params Hangar reads itself
CLIENT_REQUEST_TIMEOUT_S = 300.0
INPUT_ROUNDS = 10
SUBSCRIPTION_ID = "io.modelcontextprotocol/subscriptionId"
# listen filter key <-> notification method, both ways
LISTEN_TYPES: dict[str, str] = {
    "toolsListChanged": "notifications/tools/list_changed",
    "promptsListChanged": "notifications/prompts/list_changed",
    "resourcesListChanged": "notifications/resources/list_changed",
}
LISTEN_TYPES.update({v: k for k, v in list(LISTEN_TYPES.items())})
# The output of the HTTP request being served, when it can carry notifications and requests (SSE).
REQUEST_CHANNEL: contextvars.ContextVar[Notify | None] = contextvars.ContextVar("hangar_request_channel",
                                                                              default=None)

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
REQUEST_TIMEOUT = -32001

Notify = Callable[[JsonObject], Awaitable[None]]


def error_response(request_id: Any, code: int, message: str, data: Any = None) -> JsonObject:
    error: JsonObject = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


class RpcError(Exception):
    """Raised inside a handler to answer with a JSON-RPC error."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"hangar:{offset}".encode()).decode()


def _decode_cursor(cursor: Any) -> int:
    if cursor is None:
        return 0
    try:
        kind, _, value = base64.urlsafe_b64decode(str(cursor)).decode().partition(":")
        if kind != "hangar" or int(value) < 0:
            raise ValueError
        return int(value)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise RpcError(INVALID_PARAMS, "invalid cursor") from None


class Front:
    """What every front session shares: the catalogue, the management tools, the live sessions."""

    def __init__(self, hangar: Hangar) -> None:
        self.hangar = hangar
        self.catalog = Catalog(hangar, MANAGEMENT_TOOLS)
        self.guard = Guard(hangar.auth, self.catalog)
        self.management = Management(hangar, self.guard)
        self.features = Features(hangar)
        self.sessions: set[FrontSession] = set()
        self.sessions_opened: Counter[tuple[str, str]] = Counter()  # (era, transport), for metrics
        self.catalog.on_change(self._tools_changed)
        self.listeners: set[Callable[[JsonObject], None]] = set()  # open subscriptions/listen streams
        hangar.notification_listeners.append(self._on_upstream_notification)
        self._discovering: dict[str, asyncio.Task[None]] = {}

    def close(self) -> None:
        self.catalog.close()
        with contextlib.suppress(ValueError):
            self.hangar.notification_listeners.remove(self._on_upstream_notification)
        for listener in list(self.listeners):
            listener({})  # an empty message ends each listen stream

    def capabilities(self) -> JsonObject:
        return {"tools": {"listChanged": True}, "resources": {"subscribe": True, "listChanged": True},
                "prompts": {"listChanged": True}, "completions": {}, "logging": {}}

    def _tools_changed(self) -> None:
        self.fan_out("notifications/tools/list_changed")

    def fan_out(self, method: str, params: JsonObject | None = None) -> None:
        """A notification for every client: legacy sessions, and modern listen streams that asked."""
        message: JsonObject = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        for session in list(self.sessions):
            session.notify_soon(message)
        for listener in list(self.listeners):
            listener(message)

    def _on_upstream_notification(self, server: ManagedServer, message: JsonObject) -> None:
        method = message.get("method")
        if method in ("notifications/prompts/list_changed", "notifications/resources/list_changed"):
            self.fan_out(str(method))
        elif method == "notifications/resources/updated":
            params = message.get("params")
            if isinstance(params, dict) and isinstance(params.get("uri"), str):
                self.fan_out(str(method), {**params, "uri": map_uri(server, params["uri"])})
        elif method == "notifications/message":
            for session in list(self.sessions):
                if session.log_level is not None:
                    session.notify_soon(message)

    async def discover_unknown_tools(self) -> None:
        """Start servers whose tools were never seen, so that their tools can be listed.

        Waits at most ``front.discovery_timeout_s``; a server still starting after that keeps going in
        the background and clients hear of its tools through list_changed. Tools are remembered in the
        store, so this happens once per server, ever; the servers stop again after their idle time.
        """
        unknown = self.catalog.unknown_servers()
        if not unknown:
            return
        loop = asyncio.get_running_loop()
        for server_id in unknown:
            if server_id not in self._discovering:
                self._discovering[server_id] = loop.create_task(self._discover(server_id))
        pending = [self._discovering[s] for s in unknown if s in self._discovering]
        if pending:
            await asyncio.wait(pending, timeout=self.hangar.loaded.config.front.discovery_timeout_s)

    async def _discover(self, server_id: str) -> None:
        try:
            with contextlib.suppress(HangarError):
                await self.hangar.start_server(server_id)
        finally:
            self._discovering.pop(server_id, None)


class FrontSession:
    """One client connection (stdio) or one legacy HTTP session, or one modern HTTP request."""

    # Defaults kept on the class: a modern HTTP request builds a session per request, and leaves most as is.
    era: Era | None = None
    protocol_version: str | None = None
    initialized = False
    request_headers: Mapping[str, str] | None = None
    principal: Principal | None = None  # who this session acts as (auth on)
    log_level: str | None = None
    # The output of the one HTTP request a modern session serves, when it can carry notifications and
    # requests (SSE); a session serving many requests at once (legacy HTTP) has it in REQUEST_CHANNEL.
    channel: Notify | None = None
    _request_id: Any = None
    _counted = False  # in front.sessions_opened, once its era is known

    def __init__(self, front: Front, notify: Notify | None = None, *, transport: str = "stdio") -> None:
        self.front = front
        self.hangar = front.hangar
        self._notify = notify
        self.transport = transport
        self.client_info: JsonObject = {}
        self.client_capabilities: JsonObject = {}
        self.in_flight: dict[Any, asyncio.Task[Any]] = {}
        self._outgoing: dict[str, asyncio.Future[JsonObject]] = {}  # our requests to the client
        self._outgoing_ids = itertools.count(1)
        if notify is not None:
            front.sessions.add(self)

    def close(self) -> None:
        self.front.sessions.discard(self)
        for task in list(self.in_flight.values()):
            task.cancel()
        for future in self._outgoing.values():
            if not future.done():
                future.cancel()

    def notify_soon(self, message: JsonObject) -> None:
        if self._notify is not None and self.era == "legacy" and self.initialized:
            asyncio.get_running_loop().create_task(self._send_notification(message))

    async def _send_notification(self, message: JsonObject) -> None:
        assert self._notify is not None
        with contextlib.suppress(Exception):
            await self._notify(message)

    # ------------------------------------------------------------------ entry points

    async def send_request(self, method: str, params: JsonObject,
                           channel: Notify | None = None) -> JsonObject:
        """Send a request to the client (sampling, elicitation, roots) and wait for its answer.

        ``channel`` carries it (an HTTP request's SSE stream); by default the session's own output."""
        out = channel or self._notify
        if out is None:
            raise UpstreamRpcError("no channel", {"code": -32603, "message": "this client cannot receive requests"})
        request_id = f"hangar-{next(self._outgoing_ids)}"
        future: asyncio.Future[JsonObject] = asyncio.get_running_loop().create_future()
        self._outgoing[request_id] = future
        try:
            await out({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
            async with asyncio.timeout(CLIENT_REQUEST_TIMEOUT_S):
                return await future
        except TimeoutError:
            raise UpstreamRpcError("timeout", {"code": -32001, "message": f"the client did not answer {method}"}
                                   ) from None
        finally:
            self._outgoing.pop(request_id, None)

    def _on_response(self, message: JsonObject) -> None:
        future = self._outgoing.get(str(message.get("id")))
        if future is None or future.done():
            return
        if isinstance(message.get("result"), dict):
            future.set_result(message["result"])
        else:
            error = message.get("error") if isinstance(message.get("error"), dict) else {"code": -32603}
            future.set_exception(UpstreamRpcError("client error", error))  # type: ignore[arg-type]

    async def handle(self, message: Any, headers: Mapping[str, str] | None = None) -> JsonObject | None:
        """Process one decoded message; return the response for a request, None otherwise.

        ``headers`` (lower-case names) are the HTTP request's, checked against the modern envelope."""
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
            return error_response(message.get("id") if isinstance(message, dict) else None, INVALID_REQUEST,
                                  "not a JSON-RPC 2.0 message")
        method = message.get("method")
        if method is None:
            if "result" not in message and "error" not in message:
                return error_response(message.get("id"), INVALID_REQUEST, "a request needs a 'method'")
            self._on_response(message)  # the client answering one of our requests
            return None
        if not isinstance(method, str):
            return error_response(message.get("id"), INVALID_REQUEST, "'method' must be a string")
        if "id" not in message:
            self._on_notification(method, message.get("params"))
            return None
        request_id = message["id"]
        if request_id is None or isinstance(request_id, (bool, float, dict, list)):
            return error_response(None, INVALID_REQUEST, "'id' must be a string or an integer")
        params = message.get("params")
        if params is not None and not isinstance(params, dict):
            return error_response(request_id, INVALID_PARAMS, "'params' must be an object")
        self.request_headers = headers if self.transport == "http" and self.era != "legacy" else None
        self._request_id = request_id
        params = params or {}
        try:
            if self.era != "legacy" and method != "initialize" and not sdk_loaded():
                await load_sdk()  # a modern request (or the first of a new stdio client) needs the SDK's checks
            if tracing.ENABLED:
                with tracing.front_span(method, params, headers):
                    result = await self._dispatch(method, params, message, headers)
            else:
                result = await self._dispatch(method, params, message, headers)
            if self.era == "modern":  # set by the classification, never changed after it
                result = _modern_result(result)
        except RpcError as exc:
            return error_response(request_id, exc.code, exc.message, exc.data)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("front: %s failed", method)
            return error_response(request_id, INTERNAL_ERROR, "internal error in Hangar")
        return {"jsonrpc": "2.0", "id": request_id, "result": result}

    def _on_notification(self, method: str, params: Any) -> None:
        if method == "notifications/initialized":
            self.initialized = True
        elif method == "notifications/cancelled" and isinstance(params, dict):
            task = self.in_flight.get(params.get("requestId"))
            if task is not None:
                task.cancel()

    # ------------------------------------------------------------------ era

    def _classify(self, method: str, params: JsonObject, message: JsonObject,
                  headers: Mapping[str, str] | None) -> Era:
        meta = params.get("_meta")
        modern = isinstance(meta, dict) and META_VERSION in meta
        if method == "initialize":
            if modern or (headers is not None and headers.get("mcp-protocol-version") in MODERN_VERSIONS):
                raise RpcError(METHOD_NOT_FOUND, "initialize is not a method of protocol 2026-07-28")
            if self.era == "modern":
                raise RpcError(INVALID_REQUEST, "this connection serves the 2026-07-28 protocol era; "
                                                "initialize is not available on it")
            return "legacy"
        if self.era == "legacy" and not modern:
            return "legacy"
        if self.era == "legacy" and modern:
            raise RpcError(INVALID_REQUEST, "this connection serves the handshake protocol era "
                                            f"({self.protocol_version}); per-request _meta is not accepted")
        route = accepted_modern(method, params, headers, MODERN_VERSIONS)
        if route is None:  # the SDK decides (and words the rejection)
            inbound = sdk()
            verdict = inbound.classify_inbound_request(message, headers=headers,
                                                       supported_modern_versions=MODERN_VERSIONS)
            if isinstance(verdict, inbound.InboundLadderRejection):
                raise RpcError(verdict.code, verdict.message, verdict.data)
            route = verdict.protocol_version, verdict.client_capabilities
        self.era = "modern"
        self.protocol_version, caps = route
        self.client_capabilities = caps if isinstance(caps, dict) else {}
        return "modern"

    def _dispatch(self, method: str, params: JsonObject, message: JsonObject,
                  headers: Mapping[str, str] | None) -> Awaitable[JsonObject]:
        """The handler of this request, once it may be served (a coroutine to await; no layer of its own)."""
        guard = self.front.guard
        if guard.enforcing:
            try:
                guard.check_method(self.principal, method)
            except HangarError as exc:
                raise RpcError(exc.jsonrpc_code, exc.message, as_error_data(exc)) from None
        era = self._classify(method, params, message, headers)
        if not self._counted:
            self._counted = True
            self.front.sessions_opened[(era, self.transport)] += 1
        if method == "tools/call":  # the hot path of both eras, without the _legacy or _modern coroutine
            return self._tools_call(params)
        if era == "legacy":
            return self._legacy(method, params)
        return self._modern(method, params)

    async def _legacy(self, method: str, params: JsonObject) -> JsonObject:
        if method == "initialize":
            requested = params.get("protocolVersion")
            version = requested if requested in LEGACY_VERSIONS else LATEST_LEGACY
            self.era, self.protocol_version = "legacy", version
            info, caps = params.get("clientInfo"), params.get("capabilities")
            self.client_info = info if isinstance(info, dict) else {}
            self.client_capabilities = caps if isinstance(caps, dict) else {}
            return {"protocolVersion": version, "capabilities": self.front.capabilities(),
                    "serverInfo": SERVER_INFO, "instructions": INSTRUCTIONS}
        if method == "ping":
            return {}
        if method == "logging/setLevel":
            level = params.get("level")
            self.log_level = level if isinstance(level, str) else "info"
            return {}
        return await self._common(method, params)

    async def _modern(self, method: str, params: JsonObject) -> JsonObject:
        if method == "server/discover":
            result: JsonObject = {"supportedVersions": list(MODERN_VERSIONS),
                                  "capabilities": self.front.capabilities(), "instructions": INSTRUCTIONS,
                                  "ttlMs": 0, "cacheScope": "private"}
        elif method in ("ping", "logging/setLevel", "initialize"):
            raise RpcError(METHOD_NOT_FOUND, f"method not found in protocol 2026-07-28: {method}")
        elif method == "tools/call":
            result = await self._tools_call(params)
        elif method == "subscriptions/listen":
            result = await self._listen(params)
        else:
            result = await self._common(method, params)
        return result

    # ------------------------------------------------------------------ methods of both eras

    async def _resolve_inputs(self, result: JsonObject, retry: Callable[[JsonObject], Awaitable[JsonObject]],
                              caller: Caller) -> JsonObject:
        """A 2026-07-28 upstream asked for input (``resultType: input_required``). A modern client gets
        the result as it is and retries itself; for a legacy client Hangar asks it with real requests
        (elicitation, sampling, roots) and retries the upstream call with the answers."""
        for _ in range(INPUT_ROUNDS):
            if result.get("resultType") != "input_required" or self.era != "legacy":
                return result
            requests = result.get("inputRequests")
            if caller.request is None or not isinstance(requests, dict):
                raise RpcError(INTERNAL_ERROR, "the upstream needs input this client cannot be asked for")
            answers: JsonObject = {}
            for key, request in requests.items():
                if not isinstance(request, dict) or not isinstance(request.get("method"), str):
                    raise RpcError(INTERNAL_ERROR, f"the upstream sent a malformed input request {key!r}")
                needed = CAPABILITY_OF.get(request["method"])
                if needed is None or needed not in self.client_capabilities:
                    raise RpcError(INTERNAL_ERROR, f"the upstream asked for {request['method']}, which this "
                                                   "client does not support")
                sub = request.get("params")
                try:
                    answers[key] = await caller.request(request["method"], sub if isinstance(sub, dict) else {})
                except UpstreamRpcError as exc:
                    raise RpcError(exc.jsonrpc_code, str(exc.error.get("message") or exc.message)) from None
            more: JsonObject = {"inputResponses": answers}
            if "requestState" in result:
                more["requestState"] = result["requestState"]
            result = await retry(more)
        raise RpcError(INTERNAL_ERROR, f"the upstream still needed input after {INPUT_ROUNDS} rounds")

    async def _listen(self, params: JsonObject) -> JsonObject:
        """A 2026-07-28 listen stream: acknowledge the honoured filter, then relay matching list changes
        tagged with this subscription's id, until the client goes away or Hangar shuts down."""
        channel = self.channel or REQUEST_CHANNEL.get()
        if channel is None:
            raise RpcError(INVALID_REQUEST, "subscriptions/listen needs a streaming response "
                                            "(Accept: text/event-stream)")
        wanted = params.get("notifications")
        wanted = wanted if isinstance(wanted, dict) else {}
        honored = {key: True for key in LISTEN_TYPES if wanted.get(key) is True}
        meta = {SUBSCRIPTION_ID: self._request_id}
        queue: asyncio.Queue[JsonObject] = asyncio.Queue(maxsize=1024)

        def deliver(message: JsonObject) -> None:
            if not message or LISTEN_TYPES.get(str(message.get("method"))) in honored:
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(message)

        self.front.listeners.add(deliver)
        try:
            await channel({"jsonrpc": "2.0", "method": "notifications/subscriptions/acknowledged",
                           "params": {"notifications": honored, "_meta": meta}})
            while True:
                message = await queue.get()
                if not message:
                    break  # Hangar is shutting down: end the stream gracefully
                params_out = {**message.get("params", {}), "_meta": meta}
                await channel({"jsonrpc": "2.0", "method": message["method"], "params": params_out})
        finally:
            self.front.listeners.discard(deliver)
        return {"_meta": meta}

    def _upstream_meta(self, meta: Any) -> JsonObject | None:
        """The request's ``_meta`` for the upstream: the client's capabilities travel with it (a modern
        upstream must not ask for inputs the client cannot give); the upstream layer adapts the rest."""
        out = dict(meta) if isinstance(meta, dict) else {}
        out.setdefault(META_CAPABILITIES, self.client_capabilities)
        if self.log_level is not None:
            out.setdefault(META_LOG_LEVEL, self.log_level)
        return out

    def _caller(self, meta: Any = None) -> Caller:
        """Where this request's progress and server-to-client requests go: the HTTP request's own
        stream when it has one, else the session's output (stdio)."""
        channel = self.channel or REQUEST_CHANNEL.get()
        notify = channel or self._notify
        ask = None
        if self.era == "legacy" and notify is not None:

            async def ask(method: str, params: JsonObject) -> JsonObject:
                return await self.send_request(method, params, channel)

        level = meta.get(META_LOG_LEVEL) if isinstance(meta, dict) else None
        return Caller(notify=notify, request=ask, capabilities=self.client_capabilities,
                      log_level=self.log_level or (level if isinstance(level, str) else None))

    def _call_of(self, server: ManagedServer | Group, tool: str, arguments: JsonObject | None, meta: Any,
                 caller: Caller, extra: JsonObject) -> Callable[[JsonObject | None], Awaitable[JsonObject]]:
        """The upstream call of a tools/call, made again with the fields of each input round."""

        async def call(more: JsonObject | None) -> JsonObject:
            fields = {**extra, **more} if more else extra
            return await server.call_tool(tool, arguments, meta=self._upstream_meta(meta), caller=caller,
                                          extra=fields or None)

        return call

    async def _common(self, method: str, params: JsonObject) -> JsonObject:
        if method == "tools/list":
            await self.front.discover_unknown_tools()
            tools = self.front.catalog.tools()
            if self.front.guard.active:
                tools = self.front.guard.visible(self.principal, tools)
            return self._page("tools", tools, params)
        if method == "tools/call":
            return await self._tools_call(params)
        features = self.front.features
        try:
            if method == "resources/list":
                return self._page("resources", await features.list_resources(), params)
            if method == "resources/templates/list":
                return self._page("resourceTemplates", await features.list_templates(), params)
            if method == "prompts/list":
                return self._page("prompts", await features.list_prompts(), params)
            if method == "resources/read":
                return self._cacheable(await features.read_resource(params))
            if method == "prompts/get":
                return await features.get_prompt(params)
            if method == "completion/complete":
                return await features.complete(params)
            if method in ("resources/subscribe", "resources/unsubscribe") and self.era == "legacy":
                return await features.subscribe(method, params)
        except FeatureError as exc:
            raise RpcError(exc.code, exc.message, exc.data) from None
        raise RpcError(METHOD_NOT_FOUND, f"method not found: {method}")

    def _page(self, key: str, items: list[JsonObject], params: JsonObject) -> JsonObject:
        offset = _decode_cursor(params.get("cursor"))
        result: JsonObject = {key: items[offset: offset + PAGE_SIZE]}
        if offset + PAGE_SIZE < len(items):
            result["nextCursor"] = _encode_cursor(offset + PAGE_SIZE)
        return self._cacheable(result)

    def _cacheable(self, result: JsonObject) -> JsonObject:
        if self.era == "modern":
            result["ttlMs"] = 0
            result["cacheScope"] = "private"
        return result

    async def _tools_call(self, params: JsonObject) -> JsonObject:
        name = params.get("name")
        if not isinstance(name, str):
            raise RpcError(INVALID_PARAMS, "tools/call needs a 'name'")
        arguments = params.get("arguments")
        if arguments is not None and not isinstance(arguments, dict):
            raise RpcError(INVALID_PARAMS, "'arguments' must be an object")
        route = self.front.catalog.route(name)
        if route is None:
            raise RpcError(INVALID_PARAMS, f"Unknown tool: {name}")
        guard = self.front.guard
        if guard.active:
            try:
                guard.check_call(self.principal, name, route.server_id, route.tool, arguments or {})
            except HangarError as exc:
                raise RpcError(exc.jsonrpc_code, exc.message, as_error_data(exc)) from None
        if self.request_headers is not None:  # HTTP, modern era: Mcp-Param-* must agree with the body
            tool = self.front.catalog.tool(name)
            if tool is not None:
                rejection = param_header_rejection(tool.get("inputSchema"), arguments or {}, self.request_headers)
                if rejection is not None:
                    raise RpcError(rejection.code, rejection.message, rejection.data)
        if route.server_id == MANAGEMENT:
            return await self.front.management.call(route.tool, arguments or {}, self.principal)
        meta = params.get("_meta")
        try:
            server = self.hangar.target(route.server_id)  # a server, or a group served by its strategy
            extra = {} if params.keys() <= _CALL_KEYS else \
                {k: v for k, v in params.items() if k not in _CALL_KEYS}
            caller = self._caller(meta)
            if tracing.ENABLED:
                call = self._call_of(server, route.tool, arguments, meta, caller, extra)
                with tracing.route_span(name, route.server_id, route.tool, server is not self.hangar.servers.get(
                        route.server_id)):
                    return await self._resolve_inputs(await call(None), call, caller)
            result = await server.call_tool(route.tool, arguments, meta=self._upstream_meta(meta), caller=caller,
                                            extra=extra or None)
            if result.get("resultType") != "input_required":
                return result  # the common case: no closure, no input rounds
            return await self._resolve_inputs(result, self._call_of(server, route.tool, arguments, meta, caller,
                                                                    extra), caller)
        except UpstreamRpcError as exc:
            raise RpcError(exc.jsonrpc_code, str(exc.error.get("message") or exc.message),
                           exc.error.get("data")) from None
        except UpstreamTimeoutError as exc:
            raise RpcError(REQUEST_TIMEOUT, exc.message, {"error_type": exc.error_name}) from None
        except McpServerNotFoundError as exc:
            raise RpcError(INVALID_PARAMS, exc.message) from None
        except HangarError as exc:
            raise RpcError(INTERNAL_ERROR, exc.message, {"error_type": exc.error_name,
                                                         "mcp_server": route.server_id}) from None


def _modern_result(result: JsonObject) -> JsonObject:
    """A 2026-07-28 result as sent: its resultType, and Hangar's serverInfo in its _meta."""
    result.setdefault("resultType", "complete")
    meta = result.get("_meta")
    if not isinstance(meta, dict):
        result["_meta"] = {META_SERVER_INFO: SERVER_INFO}
    elif META_SERVER_INFO not in meta:
        result["_meta"] = {**meta, META_SERVER_INFO: SERVER_INFO}
    return result


def dumps(message: JsonObject) -> bytes:
    return orjson.dumps(message)
