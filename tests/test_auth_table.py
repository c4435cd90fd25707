"""The permission table covers every route the app serves and every hangar_* tool, and with auth on
each of them answers 401 without a key and 403 to a key without the permission (deny by default)."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from auth_helpers import McpHttp, auth_on, key_for, key_without_permissions
from conftest import loaded_config, raw_server
from mcp_hangar.auth.permissions import PERMISSIONS
from mcp_hangar.front.management import MANAGEMENT_TOOLS as OFFERED_TOOLS
from mcp_hangar.hangar import Hangar
from mcp_hangar.web.app import create_app
from mcp_hangar.web.security import AUTHENTICATED, MANAGEMENT_TOOLS, PUBLIC, ROUTES, WEBSOCKET, RouteTable

# Routes and tools other work added (config as code, discovery): served now, with these permissions.
CONFIG_ROUTES = {("GET", "/api/config"): "config:read", ("POST", "/api/config/reload"): "config:reload",
                 ("POST", "/api/config/export"): "config:read", ("POST", "/api/config/backup"): "config:write",
                 ("GET", "/api/config/diff"): "config:read"}
LATER_TOOLS = {"hangar_reload_config": "config:reload", "hangar_discover": "discovery:trigger",
               "hangar_discovered": "discovery:read", "hangar_quarantine": "discovery:read",
               "hangar_approve": "discovery:approve"}


def _walk(routes: list[Any]) -> Iterator[Any]:
    for route in routes:
        nested = getattr(route, "original_router", None)
        if nested is not None:
            yield from _walk(nested.routes)
        else:
            yield route


def served_routes(app: Any) -> list[tuple[str, str]]:
    """Every (method, path) the app serves; a WebSocket route's method is ``WS``."""
    out = []
    for route in _walk(app.routes):
        methods = getattr(route, "methods", None)
        if methods is None:
            out.append((WEBSOCKET, route.path))
        else:
            out += [(m, route.path) for m in sorted(methods) if m != "HEAD"]
    return sorted(set(out))


def _app() -> Any:
    with tempfile.TemporaryDirectory() as scratch:
        return create_app(Hangar(loaded_config({}, auth_on()), Path(scratch) / "data")).api


SERVED = served_routes(_app())
PROTECTED = [(m, p) for m, p in SERVED if RouteTable().match(m, p) is not None
             and RouteTable().match(m, p)[0].permission not in (PUBLIC, AUTHENTICATED)]  # type: ignore[index]


def test_every_served_route_is_in_the_permission_table() -> None:
    table = RouteTable()
    missing = [f"{m} {p}" for m, p in SERVED if (found := table.match(m, p)) is None or found[0].path != p]
    assert not missing, f"routes without a declared permission: {missing}"
    assert len(SERVED) > 40 and ("WS", "/api/ws/events") in SERVED
    stale = [f"{r.method} {r.path}" for r in ROUTES if (r.method, r.path) not in SERVED]
    assert not stale, f"permission rules for routes the app does not serve: {stale}"


def test_the_table_declares_the_coming_routes_and_every_spec_auth_route() -> None:
    table = {(r.method, r.path): r.permission for r in ROUTES}
    for route, permission in CONFIG_ROUTES.items():
        assert route in SERVED and table[route] == permission, route
    for route in ("POST /api/auth/keys", "GET /api/auth/keys", "DELETE /api/auth/keys/{key_id}",
                  "GET /api/auth/roles", "POST /api/auth/roles", "GET /api/auth/roles/all",
                  "POST /api/auth/roles/assign", "DELETE /api/auth/roles/revoke", "GET /api/auth/roles/{role_name}",
                  "DELETE /api/auth/roles/{role_name}", "PATCH /api/auth/roles/{role_name}",
                  "GET /api/auth/principals", "GET /api/auth/principals/roles", "GET /api/auth/permissions",
                  "POST /api/auth/check-permission", "GET /api/auth/policies/{scope}/{target_id}",
                  "POST /api/auth/policies/{scope}/{target_id}", "DELETE /api/auth/policies/{scope}/{target_id}"):
        method, path = route.split(" ")
        assert (method, path) in SERVED, route
        assert table[(method, path)].startswith("auth:")
    for path in ("/health/live", "/health/ready", "/health/startup", "/metrics"):
        assert table[("GET", path)] == PUBLIC


def test_every_hangar_tool_is_in_the_permission_table() -> None:
    offered = {t["name"] for t in OFFERED_TOOLS}
    assert offered - set(MANAGEMENT_TOOLS) == set(), "hangar_* tools without a declared permission"
    assert set(MANAGEMENT_TOOLS) - offered == set(), "permission rules for hangar_* tools nobody offers"
    for tool, permission in LATER_TOOLS.items():
        assert tool in offered and MANAGEMENT_TOOLS[tool].permission == permission, tool


def test_literal_segments_win_over_parameters() -> None:
    table = RouteTable()
    assert table.match("GET", "/api/auth/roles/all")[0].path == "/api/auth/roles/all"  # type: ignore[index]
    assert table.match("DELETE", "/api/auth/roles/revoke")[0].path == "/api/auth/roles/revoke"  # type: ignore[index]
    rule, params = table.match("DELETE", "/api/auth/roles/custom")  # type: ignore[misc]
    assert rule.path == "/api/auth/roles/{role_name}" and params == {"role_name": "custom"}
    assert table.match("GET", "/api/nothing/here") is None


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


@pytest.mark.parametrize(("method", "path"), [r for r in PROTECTED if r[0] != WEBSOCKET])
async def test_each_protected_route_is_401_without_a_key_and_403_without_the_permission(
        method: str, path: str, api_factory: Any) -> None:
    hangar, client = await api_factory({}, extra=auth_on())
    url = _concrete(path)
    refused = await client.request(method, url)
    assert refused.status_code == 401, refused.text
    assert refused.json() == {"error": "AuthenticationError", "message": refused.json()["message"],
                              "status_code": 401}
    wrong = await client.request(method, url, headers={"x-api-key": "mcp_" + "A" * 43})
    assert wrong.status_code == 401
    key = await key_without_permissions(hangar)
    denied = await client.request(method, url, headers={"x-api-key": key})
    assert denied.status_code == 403, denied.text
    body = denied.json()
    assert body["error"] == "AccessDeniedError" and body["status_code"] == 403
    assert RouteTable().match(method, path)[0].permission in body["message"]  # type: ignore[index]


async def test_unlisted_routes_are_refused_even_to_an_admin(api_factory: Any) -> None:
    hangar, client = await api_factory({}, extra=auth_on())
    admin = await key_for(hangar, "user:root", "admin")
    assert (await client.get("/api/not-a-route")).status_code == 401
    refused = await client.get("/api/not-a-route", headers={"x-api-key": admin})
    assert refused.status_code == 403 and refused.json()["error"] == "AccessDeniedError"
    assert (await client.get("/api/mcp_servers", headers={"x-api-key": admin})).status_code == 200


async def test_probes_and_metrics_stay_open_with_auth_on(api_factory: Any) -> None:
    _, client = await api_factory({}, extra=auth_on())
    for path in ("/health/live", "/health/ready", "/health/startup", "/metrics"):
        assert (await client.get(path)).status_code == 200, path


async def test_the_websocket_is_401_without_a_key_and_403_without_the_permission(http_factory: Any) -> None:
    hangar, base = await http_factory({}, extra=auth_on())
    url = base.replace("http://", "ws://") + "/api/ws/events"
    with pytest.raises(InvalidStatus) as no_key:
        await connect(url, open_timeout=10)
    assert no_key.value.response.status_code == 401
    assert b'"AuthenticationError"' in no_key.value.response.body
    key = await key_without_permissions(hangar)
    with pytest.raises(InvalidStatus) as no_permission:
        await connect(url, open_timeout=10, additional_headers={"x-api-key": key})
    assert no_permission.value.response.status_code == 403
    assert b'"AccessDeniedError"' in no_permission.value.response.body


async def test_mcp_needs_a_key_and_every_hangar_tool_needs_its_permission(http_factory: Any) -> None:
    hangar, base = await http_factory({"math": raw_server()}, extra=auth_on())
    async with httpx.AsyncClient(timeout=30) as client:
        anonymous = await McpHttp(client, base, None).open()
        assert anonymous.status_code == 401 and anonymous.json()["error"] == "AuthenticationError"
        assert "www-authenticate" in anonymous.headers
        nobody = McpHttp(client, base, await key_without_permissions(hangar))
        assert (await nobody.open()).status_code == 200  # initialize needs only a valid key
        listed = await nobody.request("tools/list")
        assert listed["error"]["code"] == -32003 and "tools:list" in listed["error"]["message"]
        for tool in sorted(t["name"] for t in OFFERED_TOOLS):  # every tool this branch offers
            answer = await nobody.call(tool, {"mcp_server": "math", "group": "g", "calls": []})
            if MANAGEMENT_TOOLS[tool].permission == AUTHENTICATED:
                assert "result" in answer, (tool, answer)
                continue
            assert answer.get("error", {}).get("code") == -32003, (tool, answer)
            assert answer["error"]["data"]["error_type"] == "AccessDeniedError"
            assert MANAGEMENT_TOOLS[tool].permission in answer["error"]["message"]
        upstream = await nobody.call("math__add", {"a": 1, "b": 2})
        assert upstream["error"]["code"] == -32003 and "tools:invoke" in upstream["error"]["message"]


async def test_config_routes_and_the_reload_tool_need_exactly_their_config_permission(http_factory: Any) -> None:
    """With every permission but the one needed: refused; with only that one: let through."""
    hangar, base = await http_factory({}, extra=auth_on())
    everything = [f"{resource}:{action}" for resource, actions in PERMISSIONS.items() for action in actions]

    async def keys(permission: str) -> tuple[str, str]:
        name = permission.replace(":", "-")
        await hangar.auth.create_role(f"only-{name}", "", [permission], "test")
        await hangar.auth.create_role(f"all-but-{name}", "", [p for p in everything if p != permission], "test")
        return (await key_for(hangar, f"user:only-{name}", f"only-{name}"),
                await key_for(hangar, f"user:but-{name}", f"all-but-{name}"))

    async with httpx.AsyncClient(timeout=30) as client:
        for method, path, permission in (("GET", "/api/config", "config:read"),
                                         ("POST", "/api/config/reload", "config:reload"),
                                         ("POST", "/api/config/backup", "config:write")):
            allowed, denied = await keys(permission)
            refused = await client.request(method, f"{base}{path}", headers={"x-api-key": denied})
            assert refused.status_code == 403 and permission in refused.json()["message"], (path, refused.text)
            passed = await client.request(method, f"{base}{path}", headers={"x-api-key": allowed})
            # Past auth; without a config file a reload is 422 and a backup 404/503, never 401/403.
            assert passed.status_code not in (401, 403), (path, passed.text)
        # The MCP tool, with keys of the same two roles.
        allowed = await key_for(hangar, "user:reloader", "only-config-reload")
        denied = await key_for(hangar, "user:not-reloader", "all-but-config-reload")
        refused_mcp = McpHttp(client, base, denied)
        await refused_mcp.open()
        answer = await refused_mcp.call("hangar_reload_config")
        assert answer["error"]["code"] == -32003 and "config:reload" in answer["error"]["message"]
        reloader = McpHttp(client, base, allowed)
        await reloader.open()
        answer = await reloader.call("hangar_reload_config")
        assert answer["result"]["isError"] is True  # past auth: no config file to reload
        assert "no file to reload" in answer["result"]["content"][0]["text"]
