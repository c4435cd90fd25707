"""Helpers of the auth tests: an auth-on config, keys for given roles, and MCP calls over HTTP."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from mcp_hangar.hangar import Hangar
from ws_helpers import ws_url

LEGACY = "2025-06-18"
_ids = itertools.count(1)


def auth_on(**settings: Any) -> dict[str, Any]:
    """The ``extra`` sections of a config with auth on (``settings`` merged into the ``auth:`` block)."""
    return {"auth": {"enabled": True, **settings}}


async def key_for(hangar: Hangar, principal: str, *roles: str, scope: str = "global") -> str:
    """A fresh API key of ``principal`` holding ``roles`` (made through the auth service)."""
    for role in roles:
        await hangar.auth.assign(principal, role, scope, "test")
    raw, _ = await hangar.auth.create_key(principal, f"{principal}-key", "test", None)
    return raw


async def key_without_permissions(hangar: Hangar) -> str:
    """A key whose only role grants nothing at all."""
    if "nothing" not in {r.name for r in hangar.auth.roles()}:
        await hangar.auth.create_role("nothing", "grants no permission", [], "test")
    return await key_for(hangar, "user:nobody", "nothing")


def rpc(method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": next(_ids), "method": method, "params": params or {}}


class McpHttp:
    """A legacy-era MCP client session over real HTTP with one key."""

    def __init__(self, client: httpx.AsyncClient, base_url: str, key: str | None, bearer: bool = False) -> None:
        self.client = client
        self.url = f"{base_url}/mcp"
        self.headers = {"accept": "application/json, text/event-stream"}
        if key is not None:
            self.headers["authorization" if bearer else "x-api-key"] = f"Bearer {key}" if bearer else key
        self.session: str | None = None

    async def open(self) -> httpx.Response:
        response = await self.client.post(self.url, headers=self.headers, json=rpc("initialize", {
            "protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "auth-test", "version": "1"}}))
        if response.status_code == 200:
            self.session = response.headers["mcp-session-id"]
            await self.client.post(self.url, headers=self._headers(),
                                   json={"jsonrpc": "2.0", "method": "notifications/initialized"})
        return response

    def _headers(self) -> dict[str, str]:
        out = dict(self.headers)
        if self.session is not None:
            out["mcp-session-id"] = self.session
            out["mcp-protocol-version"] = LEGACY
        return out

    async def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self.client.post(self.url, headers=self._headers(), json=rpc(method, params))
        body: dict[str, Any] = response.json()
        return body

    async def tool_names(self) -> list[str]:
        body = await self.request("tools/list")
        return [t["name"] for t in body["result"]["tools"]]

    async def call(self, name: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.request("tools/call", {"name": name, "arguments": arguments or {}})


async def open_ws(base: str, key: str) -> ClientConnection:
    """A subscribed event stream opened with ``key``."""
    ws = await connect(ws_url(base), open_timeout=10, additional_headers={"x-api-key": key})
    await ws.send(json.dumps({"type": "subscribe", "event_types": ["*"]}))
    async with asyncio.timeout(10):
        while json.loads(await ws.recv()).get("type") != "subscribed":
            pass
    return ws


async def closed(ws: ClientConnection, timeout: float = 10.0) -> tuple[int | None, str | None]:
    """Read until the server closes ``ws`` (within ``timeout``); its close code and reason."""
    async with asyncio.timeout(timeout):
        with pytest.raises(ConnectionClosed):
            while True:
                await ws.recv()
    return ws.close_code, ws.close_reason


async def still_open(ws: ClientConnection) -> bool:
    await ws.send(json.dumps({"type": "ping"}))
    async with asyncio.timeout(10):
        while json.loads(await ws.recv()).get("type") != "pong":
            pass
    return True
