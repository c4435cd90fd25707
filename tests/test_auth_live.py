"""Access taken away while a connection is open ends it: a WebSocket on /api/ws/events is closed with 1008
and the reason, a legacy MCP session is refused from then on and its GET stream ends. Real uvicorn,
real WebSocket and HTTP clients; every wait has a deadline."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from auth_helpers import LEGACY, McpHttp, auth_on, closed, key_for, open_ws, still_open
from conftest import raw_server
from ws_helpers import ws_url


class Admin:
    """REST calls made with an admin key."""

    def __init__(self, client: httpx.AsyncClient, base: str, key: str) -> None:
        self.client, self.base, self.headers = client, base, {"x-api-key": key}

    async def key(self, principal: str, expires_at: float | None = None) -> tuple[str, str]:
        body: dict[str, Any] = {"principal_id": principal, "name": f"{principal}-live"}
        if expires_at is not None:
            body["expires_at"] = datetime.fromtimestamp(expires_at, UTC).isoformat()
        made = await self.client.post(f"{self.base}/api/auth/keys", headers=self.headers, json=body)
        assert made.status_code == 201, made.text
        return made.json()["key_id"], made.json()["raw_key"]

    async def send(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        answer = await self.client.request(method, f"{self.base}{path}", headers=self.headers, json=body)
        assert answer.status_code < 300, answer.text
        return answer

    async def assign(self, principal: str, role: str) -> None:
        await self.send("POST", "/api/auth/roles/assign", {"principal_id": principal, "role_name": role})


@pytest.fixture
async def served(http_factory: Any) -> Any:
    hangar, base = await http_factory({"math": raw_server()}, extra=auth_on())
    async with httpx.AsyncClient(timeout=30) as client:
        yield hangar, base, client, Admin(client, base, await key_for(hangar, "user:root", "admin"))



async def lines_until_revoked(client: Any, admin: Any, key_id: str, url: str, **request: Any) -> list[str]:
    """Open a streaming GET, revoke ``key_id`` once its first line arrived, and return every line the
    server sent before it ended the stream (each wait bounded by 10 s)."""
    opened = asyncio.Event()

    async def read() -> list[str]:
        lines = []
        async with client.stream("GET", url, **request) as response:
            assert response.status_code == 200
            async for line in response.aiter_lines():
                lines.append(line)
                opened.set()
        return lines

    reader = asyncio.get_running_loop().create_task(read())
    try:
        async with asyncio.timeout(10):
            await opened.wait()
        await admin.send("DELETE", f"/api/auth/keys/{key_id}")
        async with asyncio.timeout(10):
            return await reader  # the server ended the stream
    finally:
        reader.cancel()  # a no-op once it has ended; stops the reader when a wait failed

async def test_revoking_a_key_closes_its_websocket_with_1008_and_leaves_others_open(served: Any) -> None:
    hangar, base, _, admin = served
    key_id, raw = await admin.key("user:dev")
    await admin.assign("user:dev", "developer")
    ws = await open_ws(base, raw)
    bystander = await open_ws(base, admin.headers["x-api-key"])
    await admin.send("DELETE", f"/api/auth/keys/{key_id}")
    code, reason = await closed(ws)
    assert code == 1008 and reason == f"API key {key_id} was revoked"
    assert await still_open(bystander)
    assert len(hangar.auth.live) == 1  # the closed one is no longer watched
    await bystander.close()


async def test_an_expiring_key_closes_its_websocket_when_it_expires(served: Any) -> None:
    _, base, _, admin = served
    await admin.assign("user:brief", "developer")
    key_id, raw = await admin.key("user:brief", expires_at=time.time() + 5)
    ws = await open_ws(base, raw)  # admitted: it is still valid
    code, reason = await closed(ws, timeout=20)
    assert code == 1008 and reason == f"API key {key_id} expired"


async def test_losing_the_role_or_the_permission_closes_the_websocket(served: Any) -> None:
    _, base, _, admin = served
    _, dev = await admin.key("user:dev")
    await admin.assign("user:dev", "developer")
    await admin.send("POST", "/api/auth/roles", {"name": "watcher", "permissions": ["events:read"]})
    _, watcher = await admin.key("user:watch")
    await admin.assign("user:watch", "watcher")
    first, second = await open_ws(base, dev), await open_ws(base, watcher)
    await admin.send("DELETE", "/api/auth/roles/revoke", {"principal_id": "user:dev", "role_name": "developer"})
    assert await closed(first) == (1008, "'user:dev' no longer holds events:read")
    assert await still_open(second)
    await admin.send("PATCH", "/api/auth/roles/watcher", {"permissions": ["metrics:read"]})
    assert await closed(second) == (1008, "'user:watch' no longer holds events:read")
    with pytest.raises(InvalidStatus) as refused:  # and it cannot come back
        await connect(ws_url(base), open_timeout=10, additional_headers={"x-api-key": watcher})
    assert refused.value.response.status_code == 403


async def test_a_revoked_key_ends_its_legacy_mcp_session_and_its_get_stream(served: Any) -> None:
    _, base, client, admin = served
    await admin.assign("user:dev", "developer")
    key_id, raw = await admin.key("user:dev")
    _, other = await admin.key("user:dev")  # a second key of the same principal
    mcp = McpHttp(client, base, raw)
    assert (await mcp.open()).status_code == 200
    assert "result" in await mcp.call("math__add", {"a": 1, "b": 2})
    headers = {"x-api-key": raw, "accept": "text/event-stream", "mcp-session-id": mcp.session or "",
               "mcp-protocol-version": LEGACY}
    lines = await lines_until_revoked(client, admin, key_id, f"{base}/mcp", headers=headers)
    assert f": session ended: API key {key_id} was revoked" in lines
    refused = await mcp.client.post(mcp.url, headers=mcp._headers(), json={"jsonrpc": "2.0", "id": 9,
                                                                          "method": "tools/list"})
    assert refused.status_code == 401 and refused.json()["error"] == "AuthenticationError"
    mcp.headers["x-api-key"] = other  # even a valid key of the same principal cannot revive it
    gone = await mcp.client.post(mcp.url, headers=mcp._headers(), json={"jsonrpc": "2.0", "id": 10,
                                                                       "method": "tools/list"})
    assert gone.status_code == 404 and "Session ended: API key" in gone.json()["error"]["message"]


async def test_a_role_revoked_during_a_legacy_session_ends_it_and_a_new_one_has_the_new_rights(
        served: Any) -> None:
    _, base, client, admin = served
    await admin.assign("user:dev", "developer")
    _, raw = await admin.key("user:dev")
    mcp = McpHttp(client, base, raw)
    await mcp.open()
    assert "result" in await mcp.call("math__add", {"a": 1, "b": 2})
    await admin.assign("user:dev", "auditor")  # gaining a role ends nothing
    assert "result" in await mcp.call("math__add", {"a": 1, "b": 2})
    await admin.send("DELETE", "/api/auth/roles/revoke", {"principal_id": "user:dev", "role_name": "developer"})
    gone = await mcp.client.post(mcp.url, headers=mcp._headers(), json={"jsonrpc": "2.0", "id": 11,
                                                                       "method": "tools/list"})
    assert gone.status_code == 404
    assert "Session ended: 'user:dev' no longer holds " in gone.json()["error"]["message"]
    again = McpHttp(client, base, raw)  # the key is still valid: a new session acts with today's rights
    assert (await again.open()).status_code == 200
    refused = await again.call("math__add", {"a": 1, "b": 2})
    assert refused["error"]["code"] == -32003 and "tools:invoke" in refused["error"]["message"]
    assert "result" in await again.call("hangar_list")  # auditor still reads servers


async def test_each_request_of_a_legacy_session_uses_the_principals_current_roles(served: Any) -> None:
    hangar, base, client, admin = served
    await admin.assign("user:ops", "viewer")
    _, raw = await admin.key("user:ops")
    mcp = McpHttp(client, base, raw)
    await mcp.open()
    refused = await mcp.call("math__add", {"a": 1, "b": 2})
    assert refused["error"]["code"] == -32003
    await admin.assign("user:ops", "developer")  # granted while the session is open
    assert "result" in await mcp.call("math__add", {"a": 1, "b": 2})
    assert len(hangar.auth.live) == 1  # the session is still watched


async def test_a_log_follow_stream_ends_when_its_key_is_revoked(served: Any) -> None:
    hangar, base, client, admin = served
    await hangar.start_server("math")
    await admin.assign("user:reader", "viewer")
    key_id, raw = await admin.key("user:reader")
    lines = await lines_until_revoked(client, admin, key_id, f"{base}/api/mcp_servers/math/logs",
                                      params={"follow": "true"}, headers={"x-api-key": raw})
    assert lines[0] == ": following math" and lines[-2:] == [f": stream ended: API key {key_id} was revoked", ""]
