"""API key lifecycle: create, use, list, expire, revoke (refused at once), restart; only a hash is
stored; the raw key never reaches events, the event log or the logs."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from auth_helpers import auth_on, key_for
from mcp_hangar.auth.storage import AuthStore

KEY_RE = re.compile(r"^mcp_[A-Za-z0-9_-]{43,}$")


async def _admin(api_factory: Any, data_dir: Path | None = None) -> tuple[Any, Any, dict[str, str]]:
    hangar, client = await api_factory({}, data_dir=data_dir, extra=auth_on())
    return hangar, client, {"x-api-key": await key_for(hangar, "user:root", "admin")}


async def test_create_use_list_and_revoke_a_key(api_factory: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    hangar, client, admin = await _admin(api_factory)
    with hangar.bus.subscription() as events:
        created = await client.post("/api/auth/keys", headers=admin, json={"principal_id": "user:vic", "name": "ci"})
        assert created.status_code == 201
        body = created.json()
        raw = body["raw_key"]
        assert KEY_RE.match(raw) and body["principal_id"] == "user:vic" and "warning" in body
        await client.post("/api/auth/roles/assign", headers=admin,
                          json={"principal_id": "user:vic", "role_name": "viewer"})
        assert (await client.get("/api/mcp_servers", headers={"x-api-key": raw})).status_code == 200
        listed = (await client.get("/api/auth/keys", headers=admin, params={"principal_id": "user:vic"})).json()
        assert listed["total"] == 1 and listed["active"] == 1
        view = listed["keys"][0]
        assert view["key_id"] == body["key_id"] and view["last_used_at"] is not None and not view["revoked"]
        assert raw not in str(listed)
        revoked = await client.delete(f"/api/auth/keys/{body['key_id']}", headers=admin)
        assert revoked.json() == {"key_id": body["key_id"], "principal_id": "user:vic", "revoked": True}
        refused = await client.get("/api/mcp_servers", headers={"x-api-key": raw})
        assert refused.status_code == 401 and refused.json()["error"] == "AuthenticationError"
        types = []
        while events.pending():
            event = await events.get()
            types.append(event.event_type)
            assert raw not in str(event.to_dict())
        assert {"ApiKeyCreated", "RoleAssigned", "ApiKeyRevoked", "AuthenticationFailed"} <= set(types)
    assert raw not in caplog.text
    await hangar.event_log.flush()  # the audit trail is durable: it is in the event log
    stored = await hangar.event_log.read(0, hangar.event_log.position, limit=10_000)
    durable = {e.event_type for e in stored}
    assert {"ApiKeyCreated", "RoleAssigned", "ApiKeyRevoked", "AuthenticationFailed"} <= durable
    assert all(raw not in str(e.data) for e in stored)
    unknown = await client.delete("/api/auth/keys/nope", headers=admin)
    assert unknown.status_code == 404 and unknown.json()["error"] == "ApiKeyNotFoundError"


async def test_only_a_hash_is_stored_and_keys_survive_a_restart(api_factory: Any, tmp_path: Path) -> None:
    data = tmp_path / "keep"
    hangar, client, admin = await _admin(api_factory, data)
    raw = (await client.post("/api/auth/keys", headers=admin,
                             json={"principal_id": "user:r", "name": "r"})).json()["raw_key"]
    gone = (await client.post("/api/auth/keys", headers=admin,
                              json={"principal_id": "user:g", "name": "g"})).json()
    await client.delete(f"/api/auth/keys/{gone['key_id']}", headers=admin)
    await hangar.auth.assign("user:r", "viewer", "global", "test")
    assert (await client.get("/api/mcp_servers", headers={"x-api-key": raw})).status_code == 200
    await hangar.aclose()  # flushes last_used_at
    with sqlite3.connect(data / "auth.db") as db:
        rows = db.execute("SELECT * FROM api_keys").fetchall()
        stored = db.execute("SELECT key_hash, last_used_at FROM api_keys WHERE principal_id = 'user:r'").fetchone()
    assert raw not in repr(rows)
    assert stored[0] == hashlib.sha256(raw.encode()).hexdigest() and stored[1] is not None
    for name in ("auth.db", "events.db", "hangar.db"):
        for path in data.glob(f"{name}*"):
            assert raw.encode() not in path.read_bytes(), path
    _, again = await api_factory({}, data_dir=data, extra=auth_on())
    assert (await again.get("/api/mcp_servers", headers={"x-api-key": raw})).status_code == 200
    assert (await again.get("/api/mcp_servers", headers={"x-api-key": gone["raw_key"]})).status_code == 401


async def test_an_expired_key_is_refused(api_factory: Any) -> None:
    hangar, client, admin = await _admin(api_factory)
    await hangar.auth.assign("user:short", "viewer", "global", "test")
    expires = datetime.fromtimestamp(time.time() + 1.0, UTC).isoformat()
    made = await client.post("/api/auth/keys", headers=admin,
                             json={"principal_id": "user:short", "name": "s", "expires_at": expires})
    raw = made.json()["raw_key"]
    assert (await client.get("/api/mcp_servers", headers={"x-api-key": raw})).status_code == 200
    async with asyncio.timeout(10):
        while (await client.get("/api/mcp_servers", headers={"x-api-key": raw})).status_code == 200:
            await asyncio.sleep(0.1)
    refused = await client.get("/api/mcp_servers", headers={"x-api-key": raw})
    assert refused.status_code == 401
    past = datetime.fromtimestamp(time.time() - 60, UTC).isoformat()
    invalid = await client.post("/api/auth/keys", headers=admin,
                                json={"principal_id": "user:short", "name": "p", "expires_at": past})
    assert invalid.status_code == 422 and invalid.json()["error"] == "ValidationError"


async def test_bootstrap_admin_claims_once_and_a_running_server_accepts_its_key(api_factory: Any,
                                                                                 tmp_path: Path) -> None:
    data = tmp_path / "boot"
    _, client = await api_factory({}, data_dir=data, extra=auth_on())
    store = AuthStore(data / "auth.db")  # what the CLI does, while the server runs
    store.open_sync()
    try:
        made = store.bootstrap_admin_sync("user:first", "boot")
        assert made is not None
        assert store.bootstrap_admin_sync("user:second", "boot") is None
    finally:
        store.close_sync()
    raw, key = made
    assert KEY_RE.match(raw) and key.key_hash != raw
    answer = await client.get("/api/auth/principals", headers={"x-api-key": raw})
    assert answer.status_code == 200
    first = next(p for p in answer.json()["principals"] if p["principal_id"] == "user:first")
    assert first["roles"] == [{"role_name": "admin", "scope": "global", "source": "api"}]


async def test_built_in_roles_are_documented_and_immutable(api_factory: Any) -> None:
    _, client, admin = await _admin(api_factory)
    roles = {r["name"]: r for r in (await client.get("/api/auth/roles/all", headers=admin)).json()["roles"]}
    assert {"admin", "operator", "developer", "viewer", "auditor", "service-account"} <= set(roles)
    assert all(r["builtin"] and r["description"] for r in roles.values())
    for method in ("DELETE", "PATCH"):
        refused = await client.request(method, "/api/auth/roles/viewer", headers=admin, json={"permissions": []}
                                       if method == "PATCH" else None)
        assert refused.status_code == 409 and refused.json()["error"] == "BuiltinRoleError"
    again = await client.post("/api/auth/roles", headers=admin, json={"name": "admin", "permissions": []})
    assert again.status_code == 409
    assert (await client.get("/api/auth/roles", headers=admin)).json()["roles"] == []


async def test_custom_roles_lifecycle(api_factory: Any) -> None:
    hangar, client, admin = await _admin(api_factory)
    with hangar.bus.subscription() as events:
        made = await client.post("/api/auth/roles", headers=admin,
                                 json={"name": "starter", "permissions": ["mcp_servers:lifecycle"]})
        assert made.status_code == 201 and made.json()["builtin"] is False
        bad = await client.post("/api/auth/roles", headers=admin, json={"name": "bad", "permissions": ["x:y"]})
        assert bad.status_code == 422
        key = await key_for(hangar, "user:s", "starter")
        assert (await client.get("/api/mcp_servers", headers={"x-api-key": key})).status_code == 403
        await client.patch("/api/auth/roles/starter", headers=admin,
                           json={"permissions": ["mcp_servers:*"]})
        assert (await client.get("/api/mcp_servers", headers={"x-api-key": key})).status_code == 200
        await client.request("DELETE", "/api/auth/roles/revoke", headers=admin,
                             json={"principal_id": "user:s", "role_name": "starter"})
        assert (await client.get("/api/mcp_servers", headers={"x-api-key": key})).status_code == 403
        assert (await client.delete("/api/auth/roles/starter", headers=admin)).status_code == 200
        assert (await client.get("/api/auth/roles/starter", headers=admin)).status_code == 404
        seen = set()
        while events.pending():
            seen.add((await events.get()).event_type)
    assert {"CustomRoleCreated", "CustomRoleUpdated", "CustomRoleDeleted", "RoleAssigned", "RoleRevoked",
            "AuthorizationDenied"} <= seen


async def test_anonymous_access_when_allowed(api_factory: Any) -> None:
    extra = auth_on(allow_anonymous=True, role_assignments=[{"principal": "anonymous", "role": "viewer"}])
    _, client = await api_factory({}, extra=extra)
    assert (await client.get("/api/mcp_servers")).status_code == 200
    assert (await client.post("/api/mcp_servers/x/start")).status_code == 403
