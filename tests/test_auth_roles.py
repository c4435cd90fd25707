"""The role matrix: admin, developer and viewer against the same actions over REST, over /mcp and on the
WebSocket, all on one real server; the same question gets the same answer on every surface."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from auth_helpers import McpHttp, auth_on, key_for
from conftest import raw_server

ROLES = ("admin", "developer", "viewer")
# action -> roles allowed to do it
MATRIX = {
    "list servers": {"admin", "developer", "viewer"},
    "start a server": {"admin", "developer"},
    "call a tool": {"admin", "developer"},
    "create a group": {"admin"},
    "read auth": {"admin"},
    "stream events": {"admin", "developer"},
}


@pytest.fixture
async def fleet(http_factory: Any) -> tuple[Any, str, dict[str, str]]:
    hangar, base = await http_factory({"math": raw_server(), "other": raw_server()}, extra=auth_on())
    keys = {role: await key_for(hangar, f"user:{role}", role) for role in ROLES}
    return hangar, base, keys


async def _rest(client: httpx.AsyncClient, base: str, key: str, action: str) -> bool:
    headers = {"x-api-key": key}
    if action == "list servers":
        response = await client.get(f"{base}/api/mcp_servers", headers=headers)
    elif action == "start a server":
        response = await client.post(f"{base}/api/mcp_servers/math/start", headers=headers)
    elif action == "create a group":
        response = await client.post(f"{base}/api/groups", headers=headers, json={"group_id": "g1"})
        if response.status_code == 201:
            await client.delete(f"{base}/api/groups/g1", headers=headers)
    elif action == "read auth":
        response = await client.get(f"{base}/api/auth/keys", headers=headers)
    else:
        raise AssertionError(action)
    assert response.status_code in (200, 201, 403), response.text
    if response.status_code == 403:
        assert response.json()["error"] == "AccessDeniedError"
    return response.status_code != 403


async def _mcp(session: McpHttp, action: str) -> bool:
    tool, args = {"list servers": ("hangar_list", {}), "start a server": ("hangar_start", {"mcp_server": "math"}),
                  "call a tool": ("math__add", {"a": 2, "b": 3}),
                  "create a group": ("hangar_group_rebalance", {"group": "g1"})}[action]
    answer = await session.call(tool, args)
    if "error" in answer:
        assert answer["error"]["code"] == -32003, answer
        return False
    return True


async def _ws(base: str, key: str) -> bool:
    url = base.replace("http://", "ws://") + "/api/ws/events"
    try:
        ws = await connect(url, open_timeout=10, additional_headers={"x-api-key": key})
    except InvalidStatus as exc:
        assert exc.response.status_code == 403
        return False
    await ws.close()
    return True


async def test_the_role_matrix_over_rest(fleet: tuple[Any, str, dict[str, str]]) -> None:
    _, base, keys = fleet
    async with httpx.AsyncClient(timeout=30) as client:
        for action in ("list servers", "start a server", "create a group", "read auth"):
            allowed = {role for role in ROLES if await _rest(client, base, keys[role], action)}
            assert allowed == MATRIX[action], action


async def test_the_role_matrix_over_mcp_matches_rest(fleet: tuple[Any, str, dict[str, str]]) -> None:
    _, base, keys = fleet
    async with httpx.AsyncClient(timeout=30) as client:
        sessions = {role: McpHttp(client, base, keys[role]) for role in ROLES}
        for session in sessions.values():
            assert (await session.open()).status_code == 200
        for action in ("list servers", "start a server", "call a tool"):
            allowed = {role for role in ROLES if await _mcp(sessions[role], action)}
            assert allowed == MATRIX[action], action
        # groups:write: a rebalance of an unknown group is refused for lack of permission first.
        assert not await _mcp(sessions["developer"], "create a group")
        viewer_tools = await sessions["viewer"].tool_names()
        assert "hangar_list" in viewer_tools and "math__add" in viewer_tools
        assert "hangar_start" not in viewer_tools and "hangar_group_rebalance" not in viewer_tools
        assert "hangar_start" in await sessions["developer"].tool_names()


async def test_bearer_tokens_are_accepted_on_mcp_only(fleet: tuple[Any, str, dict[str, str]]) -> None:
    _, base, keys = fleet
    async with httpx.AsyncClient(timeout=30) as client:
        bearer = McpHttp(client, base, keys["viewer"], bearer=True)
        assert (await bearer.open()).status_code == 200
        whoami = (await bearer.call("hangar_whoami"))["result"]["structuredContent"]
        assert whoami["principal"]["id"] == "user:viewer"
        rest = (await client.get(f"{base}/api/auth/whoami", headers={"x-api-key": keys["viewer"]})).json()
        assert rest["principal_id"] == "user:viewer" and rest["roles"] == whoami["principal"]["roles"]
        assert rest["permissions"] == whoami["permissions"] and "mcp_servers:lifecycle" not in rest["permissions"]
        bearer_rest = await client.get(f"{base}/api/mcp_servers",
                                       headers={"authorization": f"Bearer {keys['viewer']}"})
        assert bearer_rest.status_code == 401


async def test_the_role_matrix_on_the_websocket(fleet: tuple[Any, str, dict[str, str]]) -> None:
    _, base, keys = fleet
    allowed = {role for role in ROLES if await _ws(base, keys[role])}
    assert allowed == MATRIX["stream events"]
    url = base.replace("http://", "ws://") + f"/api/ws/events?api_key={keys['admin']}"  # browsers: no headers
    ws = await connect(url, open_timeout=10)
    await ws.close()


async def test_a_legacy_session_belongs_to_the_key_that_opened_it(fleet: tuple[Any, str, dict[str, str]]) -> None:
    _, base, keys = fleet
    async with httpx.AsyncClient(timeout=30) as client:
        viewer = McpHttp(client, base, keys["viewer"])
        await viewer.open()
        hijack = McpHttp(client, base, keys["admin"])
        hijack.session = viewer.session
        answer = await hijack.call("hangar_start", {"mcp_server": "math"})
        assert answer["error"]["code"] == -32003


async def test_a_scoped_assignment_grants_only_on_its_target(api_factory: Any) -> None:
    hangar, client = await api_factory({"math": raw_server(), "other": raw_server()}, extra=auth_on())
    key = await key_for(hangar, "user:scoped", "developer", scope="mcp_server:math")
    await hangar.auth.assign("user:scoped", "viewer", "global", "test")
    headers = {"x-api-key": key}
    assert (await client.post("/api/mcp_servers/math/start", headers=headers)).status_code == 200
    assert (await client.post("/api/mcp_servers/other/start", headers=headers)).status_code == 403
    assert (await client.post("/api/mcp_servers/math/stop", headers=headers)).status_code == 200


async def test_config_role_assignments_and_the_check_permission_route(api_factory: Any) -> None:
    extra = auth_on(role_assignments=[{"principal": "user:ops", "role": "operator"}])
    hangar, client = await api_factory({}, extra=extra)
    admin = {"x-api-key": await key_for(hangar, "user:root", "admin")}
    checked = await client.post("/api/auth/check-permission", headers=admin,
                                json={"principal_id": "user:ops", "permission": "config:reload"})
    assert checked.json()["allowed"] is True and checked.json()["granted_by_role"] == "operator"
    denied = await client.post("/api/auth/check-permission", headers=admin,
                               json={"principal_id": "user:ops", "permission": "auth:write"})
    assert denied.json()["allowed"] is False
    principals = (await client.get("/api/auth/principals", headers=admin)).json()
    ops = next(p for p in principals["principals"] if p["principal_id"] == "user:ops")
    assert ops["roles"] == [{"role_name": "operator", "scope": "global", "source": "config"}]


async def test_modern_era_requests_carry_their_own_key(fleet: tuple[Any, str, dict[str, str]]) -> None:
    _, base, keys = fleet
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}

    async def call(client: httpx.AsyncClient, key: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        headers = {"accept": "application/json, text/event-stream", "mcp-protocol-version": "2026-07-28",
                   "mcp-method": "tools/call", "mcp-name": name, "x-api-key": key}
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": name, "arguments": arguments, "_meta": meta}}
        answer: dict[str, Any] = (await client.post(f"{base}/mcp", headers=headers, json=body)).json()
        return answer

    async with httpx.AsyncClient(timeout=30) as client:
        assert "result" in await call(client, keys["viewer"], "hangar_list", {})
        refused = await call(client, keys["viewer"], "math__add", {"a": 1, "b": 2})
        assert refused["error"]["code"] == -32003 and "tools:invoke" in refused["error"]["message"]
        added = await call(client, keys["developer"], "math__add", {"a": 1, "b": 2})
        assert added["result"]["isError"] is False
