"""A config reload applies the ``auth:`` block at run time: the file's role assignments (REST-made ones
untouched), ``allow_anonymous``, ``rate_limit`` and ``stdio.principal``; ``enabled`` and
``api_key.header_name`` wait for a restart and the result says why. Real file, real reload over real
HTTP (uvicorn), a real WebSocket for the connections a reload takes access from."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import httpx
import pytest
from config_helpers import NO_WATCH, Recorder, wait_for, write_config

from auth_helpers import McpHttp, closed, key_for, open_ws, still_open
from conftest import raw_server
from mcp_hangar.config import load_config

BASE: dict[str, Any] = {
    **NO_WATCH,
    "mcp_servers": {"math": raw_server()},
    "auth": {"enabled": True, "role_assignments": [{"principal": "user:alice", "role": "developer"}]},
}


@pytest.fixture
async def from_file(http_factory: Any, tmp_path: Path) -> Any:
    """``await make(doc)``: Hangar served from a config file; gives (hangar, base url, path, admin headers)."""
    async def make(doc: dict[str, Any]) -> tuple[Any, str, Path, dict[str, str]]:
        path = tmp_path / "hangar.yaml"
        write_config(path, doc)
        hangar, base = await http_factory({}, loaded=load_config(path))
        return hangar, base, path, {"x-api-key": await key_for(hangar, "user:root", "admin")}
    return make


async def reload(client: httpx.AsyncClient, base: str, admin: dict[str, str]) -> dict[str, Any]:
    answer = await client.post(f"{base}/api/config/reload", headers=admin)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()["result"]
    return result


async def test_file_role_assignments_apply_at_once_and_rest_ones_stay(from_file: Any) -> None:
    hangar, base, path, admin = await from_file(BASE)
    raw, _ = await hangar.auth.create_key("user:alice", "alice", "test", None)
    alice = {"x-api-key": raw}
    async with httpx.AsyncClient(timeout=30) as client:
        rest_assigned = await client.post(f"{base}/api/auth/roles/assign", headers=admin,
                                          json={"principal_id": "user:alice", "role_name": "viewer"})
        assert rest_assigned.status_code == 200
        assert (await client.post(f"{base}/api/mcp_servers/math/start", headers=alice)).status_code == 200
        ws = await open_ws(base, raw)  # events:read from the file's developer role
        doc = copy.deepcopy(BASE)
        doc["auth"]["role_assignments"] = [{"principal": "user:bob", "role": "auditor"}]
        recorder = Recorder(hangar)
        write_config(path, doc)
        result = await reload(client, base, admin)
        assert result["restart_required"] == []
        assert result["auth"]["changed"] == ["role_assignments"]
        assert result["auth"]["role_assignments_added"] == [{"principal": "user:bob", "role": "auditor",
                                                             "scope": "global"}]
        assert result["auth"]["role_assignments_removed"] == [{"principal": "user:alice", "role": "developer",
                                                               "scope": "global"}]
        assert await closed(ws) == (1008, "'user:alice' no longer holds events:read")
        # The REST-made viewer role is untouched: alice still reads, but no longer starts servers.
        assert (await client.get(f"{base}/api/mcp_servers", headers=alice)).status_code == 200
        refused = await client.post(f"{base}/api/mcp_servers/math/start", headers=alice)
        assert refused.status_code == 403 and "mcp_servers:lifecycle" in refused.json()["message"]
        roles = (await client.get(f"{base}/api/auth/principals/roles", headers=admin,
                                  params={"principal_id": "user:alice"})).json()
        assert roles["roles"] == [{"role_name": "viewer", "scope": "global", "source": "api"}], roles
    revoked, assigned = recorder.of("RoleRevoked"), recorder.of("RoleAssigned")
    assert [(e.to_dict()["principal_id"], e.to_dict()["source"], e.to_dict()["config_path"]) for e in revoked] == \
        [("user:alice", "config", str(path))]
    assert [(e.to_dict()["principal_id"], e.to_dict()["role_name"], e.to_dict()["source"]) for e in assigned] == \
        [("user:bob", "auditor", "config")]
    assert recorder.of("ConfigurationReloaded")[-1].to_dict()["auth_changed"] == ["role_assignments"]
    await hangar.event_log.flush()  # and durable, in the event log
    stored = await hangar.event_log.read(0, hangar.event_log.position, limit=10_000)
    durable = [e.data for e in stored if e.event_type == "RoleRevoked" and e.data.get("source") == "config"]
    assert [(d["principal_id"], d["config_path"]) for d in durable] == [("user:alice", str(path))]


async def test_an_unchanged_auth_block_changes_nothing(from_file: Any) -> None:
    hangar, base, _, admin = await from_file(BASE)
    recorder = Recorder(hangar)
    async with httpx.AsyncClient(timeout=30) as client:
        result = await reload(client, base, admin)
    assert result["auth"] == {"changed": [], "role_assignments_added": [], "role_assignments_removed": [],
                              "restart_required": {}}
    assert not recorder.of("RoleAssigned") and not recorder.of("RoleRevoked")


async def test_allow_anonymous_and_rate_limits_apply_at_once(from_file: Any) -> None:
    doc = copy.deepcopy(BASE)
    doc["auth"]["allow_anonymous"] = True
    doc["auth"]["role_assignments"].append({"principal": "anonymous", "role": "developer"})
    _, base, path, admin = await from_file(doc)
    async with httpx.AsyncClient(timeout=30) as client:
        assert (await client.get(f"{base}/api/mcp_servers")).status_code == 200  # anonymous reads
        anonymous_ws = await open_ws(base, "")
        keyed_ws = await open_ws(base, admin["x-api-key"])
        doc["auth"]["allow_anonymous"] = False
        doc["auth"]["rate_limit"] = {"mutations": {"rps": 0.01, "burst": 2}}
        write_config(path, doc)
        result = await reload(client, base, admin)  # a mutation: the old, generous bucket
        assert result["auth"]["changed"] == ["allow_anonymous", "rate_limit"]
        assert await closed(anonymous_ws) == (1008, "anonymous access was turned off")
        assert await still_open(keyed_ws)
        refused = await client.get(f"{base}/api/mcp_servers")
        assert refused.status_code == 401 and refused.json()["error"] == "AuthenticationError"
        check = {"principal_id": "user:root", "permission": "config:read"}
        answers = [await client.post(f"{base}/api/auth/check-permission", headers=admin, json=check)
                   for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 429]  # the new bucket holds two
        assert answers[2].json()["error"] == "RateLimitExceeded" and int(answers[2].headers["retry-after"]) >= 1
        await keyed_ws.close()


async def test_enabled_and_the_header_name_wait_for_a_restart_and_say_why(from_file: Any) -> None:
    hangar, base, path, admin = await from_file(BASE)
    doc = copy.deepcopy(BASE)
    doc["auth"]["enabled"] = False
    doc["auth"]["api_key"] = {"header_name": "X-Hangar-Key"}
    doc["auth"]["stdio"] = {"principal": {"id": "user:ops", "roles": ["viewer"]}}
    write_config(path, doc)
    async with httpx.AsyncClient(timeout=30) as client:
        result = await reload(client, base, admin)
        assert result["restart_required"] == ["auth.api_key.header_name", "auth.enabled"]
        reasons = result["auth"]["restart_required"]
        assert set(reasons) == {"enabled", "api_key.header_name"}
        assert "start" in reasons["enabled"] and "header" in reasons["api_key.header_name"]
        assert result["auth"]["changed"] == ["stdio.principal", "role_assignments"]
        # Still enforced, still on the old header.
        assert (await client.get(f"{base}/api/mcp_servers")).status_code == 401
        assert (await client.get(f"{base}/api/mcp_servers", headers={"X-Hangar-Key": admin["x-api-key"]})
                ).status_code == 401
        assert (await client.get(f"{base}/api/mcp_servers", headers=admin)).status_code == 200
        mcp = McpHttp(client, base, admin["x-api-key"])  # the MCP tool reloads through the same path
        await mcp.open()
        again = await mcp.call("hangar_reload_config")
        answered = again["result"]["structuredContent"]["result"]
        assert answered["restart_required"] == ["auth.api_key.header_name", "auth.enabled"]
    stdio = hangar.auth.stdio_principal()
    assert stdio is not None and stdio.principal_id == "user:ops"
    assert stdio.allows("mcp_servers:read") and not stdio.allows("mcp_servers:lifecycle")
    assert not hangar.auth.principal("user:local").allows("mcp_servers:read")  # the old one lost admin


async def test_the_watcher_applies_a_saved_auth_change_and_closes_what_lost_access(from_file: Any) -> None:
    doc = {k: v for k, v in copy.deepcopy(BASE).items() if k != "config_reload"}  # the watcher on
    hangar, base, path, _ = await from_file(doc)
    raw, _ = await hangar.auth.create_key("user:alice", "alice", "test", None)
    ws = await open_ws(base, raw)
    recorder = Recorder(hangar)
    doc["auth"]["role_assignments"] = []
    write_config(path, doc)  # saved the way an editor does; nobody calls reload
    assert await closed(ws, timeout=20) == (1008, "'user:alice' no longer holds events:read")
    await wait_for(lambda: bool(recorder.of("ConfigurationReloaded")), "the reload to be announced")
    reloaded = recorder.of("ConfigurationReloaded")[-1].to_dict()
    assert reloaded["trigger"] == "watcher" and reloaded["auth_changed"] == ["role_assignments"]
    assert [e.to_dict()["source"] for e in recorder.of("RoleRevoked")] == ["config"]
