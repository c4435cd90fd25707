"""GET /api/config/diff: empty when in sync; otherwise a unified diff and structured differences saying
whether REST or the file made each one; export + reload brings file and memory back in sync."""

from __future__ import annotations

from typing import Any

import yaml
from config_helpers import NO_WATCH, file_hangar, write_config

from conftest import raw_server

__all__ = ["file_hangar"]


async def test_in_sync_the_diff_is_empty(file_hangar: Any) -> None:
    _, client, _ = await file_hangar({"mcp_servers": {"a": raw_server()}, "groups": {"g": {"members": ["a"]}},
                                      **NO_WATCH})
    body = (await client.get("/api/config/diff")).json()
    assert body["has_diff"] is False and body["diff"] == "" and body["differences"] == []
    assert body["on_disk"] == body["in_memory"] and "a" in body["on_disk"]["mcp_servers"]


async def test_rest_and_file_changes_are_told_apart(file_hangar: Any) -> None:
    doc: dict[str, Any] = {"mcp_servers": {"a": raw_server(), "b": raw_server()}, **NO_WATCH}
    _, client, path = await file_hangar(doc)
    await client.post("/api/mcp_servers", json={"mcp_server_id": "rest1", **raw_server()})
    await client.put("/api/mcp_servers/a", json={"description": "via REST"})
    doc["mcp_servers"]["c"] = raw_server()
    doc["mcp_servers"]["b"] = raw_server(idle_ttl_s=42)
    write_config(path, doc)

    body = (await client.get("/api/config/diff")).json()
    assert body["has_diff"] is True
    found = {(d["section"], d["id"]): d for d in body["differences"]}
    assert found[("mcp_servers", "rest1")] | {"fields": []} == {
        "section": "mcp_servers", "id": "rest1", "change": "added", "origin": "api", "fields": []}
    assert found[("mcp_servers", "a")]["change"] == "changed" and found[("mcp_servers", "a")]["origin"] == "api"
    assert found[("mcp_servers", "a")]["fields"] == ["description"]
    assert found[("mcp_servers", "c")]["change"] == "removed" and found[("mcp_servers", "c")]["origin"] == "file"
    assert found[("mcp_servers", "b")]["origin"] == "file" and found[("mcp_servers", "b")]["fields"] == ["idle_ttl_s"]
    assert len(found) == 4
    assert body["diff"].startswith("--- on-disk\n+++ in-memory\n")
    assert "+    description: via REST" in body["diff"] and "rest1" in body["diff"]


async def test_export_written_to_the_file_and_reloaded_is_in_sync(file_hangar: Any) -> None:
    hangar, client, path = await file_hangar({"mcp_servers": {"a": raw_server()}, **NO_WATCH})
    await client.post("/api/mcp_servers", json={"mcp_server_id": "rest1", **raw_server()})
    await client.post("/api/groups", json={"group_id": "g"})
    await client.post("/api/groups/g/members", json={"member_id": "rest1"})
    await client.post("/api/mcp_servers/a/start")
    pid = hangar.servers["a"].pid
    assert (await client.get("/api/config/diff")).json()["has_diff"] is True
    write_config(path, (await client.post("/api/config/export")).json()["yaml"])
    result = (await client.post("/api/config/reload")).json()["result"]
    assert result["mcp_servers_unchanged"] == ["a"] and result["mcp_servers_updated"] == ["rest1"]
    body = (await client.get("/api/config/diff")).json()
    assert body == {**body, "has_diff": False, "diff": "", "differences": []}
    assert hangar.servers["a"].pid == pid
    assert hangar.servers["rest1"].source == "config" and hangar.groups.get("g").source == "config"


async def test_a_secret_change_shows_as_a_difference_without_the_value(file_hangar: Any) -> None:
    doc: dict[str, Any] = {"mcp_servers": {"a": raw_server(env={"API_TOKEN": "old-value-1"})}, **NO_WATCH}
    _, client, path = await file_hangar(doc)
    doc["mcp_servers"]["a"]["env"]["API_TOKEN"] = "new-value-2"
    write_config(path, doc)
    r = await client.get("/api/config/diff")
    body = r.json()
    assert body["has_diff"] is True and body["differences"][0]["fields"] == ["env"]
    assert "old-value-1" not in r.text and "new-value-2" not in r.text


async def test_an_invalid_file_on_disk_is_reported_not_a_500(file_hangar: Any) -> None:
    _, client, path = await file_hangar({"mcp_servers": {"a": raw_server()}, **NO_WATCH})
    write_config(path, yaml.safe_dump({"mcp_servers": {"a": {"mode": "subprocess"}}}))
    r = await client.get("/api/config/diff")
    assert r.status_code == 200
    assert "mcp_servers.a" in r.json()["on_disk_error"] and r.json()["has_diff"] is True
