"""A first end-to-end check of the in-process pieces: start a fixture server through REST, call it."""

from __future__ import annotations

from conftest import raw_server


async def test_start_and_call_raw_server(api_factory) -> None:
    hangar, client = await api_factory({"raw": raw_server()})
    r = await client.post("/api/mcp_servers/raw/start")
    assert r.status_code == 200, r.text
    assert "echo" in r.json()["tools"]
    result = await hangar.call_tool("raw", "add", {"a": 2, "b": 3})
    assert result["structuredContent"] == {"result": 5}
    r = await client.get("/api/mcp_servers/raw/tools/history")
    body = r.json()
    assert body["total"] == 1
    assert body["history"][0]["tool_name"] == "add"
