"""What every upstream transport offers the supervisor: JSON-RPC requests to one running server."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

JsonObject = dict[str, Any]
# Called with a server-to-client request; returns the result object or raises an UpstreamRpcError.
RequestHandler = Callable[[JsonObject], Awaitable[JsonObject]]
NotificationHandler = Callable[[JsonObject], None]

CLIENT_NAME = "mcp-hangar"
LEGACY_PROTOCOL_VERSION = "2025-11-25"


class Upstream(Protocol):
    """One live connection to one upstream MCP server process or endpoint."""

    @property
    def pid(self) -> int | None: ...

    @property
    def protocol_version(self) -> str | None: ...

    @property
    def server_info(self) -> JsonObject: ...

    @property
    def capabilities(self) -> JsonObject: ...

    @property
    def era(self) -> str | None:
        """``legacy`` or ``modern`` once started."""

    @property
    def broken(self) -> Exception | None:
        """Why the connection can no longer be used, if it cannot."""

    async def start(self, timeout: float) -> None:
        """Spawn or connect, and complete the MCP handshake within ``timeout`` seconds."""

    async def request(self, method: str, params: JsonObject | None, timeout: float) -> JsonObject:
        """Send a request and return its ``result`` object; raise an ``UpstreamError`` otherwise."""

    async def notify(self, method: str, params: JsonObject | None = None) -> None: ...

    async def close(self, grace: float = 1.5) -> int | None:
        """Stop gracefully then forcibly; return the exit code when there was a process."""

    def set_exit_callback(self, callback: Callable[[int | None, str], None]) -> None:
        """``callback(exit_code, message)`` runs once when the connection dies on its own."""


async def answer_server_request(message: JsonObject, on_request: RequestHandler | None) -> JsonObject:
    """The response to a server-to-client request: ``ping`` locally, the rest through ``on_request``."""
    from ..errors import UpstreamRpcError

    response: JsonObject = {"jsonrpc": "2.0", "id": message["id"]}
    try:
        if message.get("method") == "ping":
            response["result"] = {}
        elif on_request is not None:
            response["result"] = await on_request(message)
        else:
            response["error"] = {"code": -32601, "message": f"method not supported: {message.get('method')}"}
    except UpstreamRpcError as exc:
        response["error"] = exc.error
    return response
