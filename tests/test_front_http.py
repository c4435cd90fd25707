"""The Streamable HTTP front at the wire level: era detection, header checks, sessions, security."""

from __future__ import annotations

from typing import Any

import httpx

from conftest import raw_server

MODERN = "2026-07-28"
ACCEPT = "application/json, text/event-stream"


def _meta(**extra: Any) -> dict[str, Any]:
    return {"io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {}, **extra}


def _modern_headers(method: str, name: str | None = None) -> dict[str, str]:
    headers = {"accept": ACCEPT, "mcp-protocol-version": MODERN, "mcp-method": method}
    if name is not None:
        headers["mcp-name"] = name
    return headers


async def _initialize(client: httpx.AsyncClient) -> str:
    r = await client.post("/mcp", headers={"accept": ACCEPT}, json={
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t"}}})
    assert r.status_code == 200
    assert r.json()["result"]["protocolVersion"] == "2025-06-18"
    return r.headers["mcp-session-id"]


async def test_modern_call_with_headers(http_factory: Any) -> None:
    _, base = await http_factory({"raw": raw_server()})
    async with httpx.AsyncClient(base_url=base) as client:
        body = {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                "params": {"name": "raw__echo", "arguments": {"text": "x"}, "_meta": _meta()}}
        r = await client.post("/mcp", headers=_modern_headers("tools/call", "raw__echo"), json=body)
        assert r.status_code == 200
        result = r.json()["result"]
        assert result["content"] == [{"type": "text", "text": "x"}]
        assert result["resultType"] == "complete"
        assert "mcp-session-id" not in r.headers


async def test_modern_header_mismatch_is_rejected(http_factory: Any) -> None:
    _, base = await http_factory({"raw": raw_server()})
    async with httpx.AsyncClient(base_url=base) as client:
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": "raw__echo", "arguments": {"text": "x"}, "_meta": _meta()}}
        r = await client.post("/mcp", headers=_modern_headers("tools/call"), json=body)  # no Mcp-Name
        assert r.status_code == 400
        assert r.json()["error"]["code"] == -32020
        r = await client.post("/mcp", headers=_modern_headers("tools/list", "raw__echo"), json=body)
        assert r.status_code == 400 and r.json()["error"]["code"] == -32020


async def test_unsupported_modern_version(http_factory: Any) -> None:
    _, base = await http_factory({})
    async with httpx.AsyncClient(base_url=base) as client:
        meta = {"io.modelcontextprotocol/protocolVersion": "2099-01-01",
                "io.modelcontextprotocol/clientCapabilities": {}}
        r = await client.post("/mcp", headers={"accept": ACCEPT, "mcp-protocol-version": "2099-01-01",
                                               "mcp-method": "tools/list"},
                              json={"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": meta}})
        assert r.status_code == 400
        error = r.json()["error"]
        assert error["code"] == -32022 and error["data"]["supported"] == [MODERN]


async def test_modern_missing_envelope_is_invalid_params(http_factory: Any) -> None:
    _, base = await http_factory({})
    async with httpx.AsyncClient(base_url=base) as client:
        r = await client.post("/mcp", headers=_modern_headers("tools/list"),
                              json={"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}})
        assert r.status_code == 400 and r.json()["error"]["code"] == -32602


async def test_discover_and_unknown_method(http_factory: Any) -> None:
    _, base = await http_factory({})
    async with httpx.AsyncClient(base_url=base) as client:
        r = await client.post("/mcp", headers=_modern_headers("server/discover"),
                              json={"jsonrpc": "2.0", "id": 1, "method": "server/discover",
                                    "params": {"_meta": _meta()}})
        result = r.json()["result"]
        assert result["supportedVersions"] == [MODERN]
        assert result["ttlMs"] == 0 and result["cacheScope"] == "private"
        assert result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "mcp-hangar"
        r = await client.post("/mcp", headers=_modern_headers("nope/nothing"),
                              json={"jsonrpc": "2.0", "id": 2, "method": "nope/nothing",
                                    "params": {"_meta": _meta()}})
        assert r.status_code == 404 and r.json()["error"]["code"] == -32601


async def test_get_and_delete_are_405_for_modern_and_sessionless(http_factory: Any) -> None:
    _, base = await http_factory({})
    async with httpx.AsyncClient(base_url=base) as client:
        for method in ("GET", "DELETE"):
            r = await client.request(method, "/mcp", headers={"mcp-protocol-version": MODERN})
            assert r.status_code == 405 and r.headers["allow"] == "POST"
            r = await client.request(method, "/mcp")
            assert r.status_code == 405


async def test_legacy_session_lifecycle(http_factory: Any) -> None:
    _, base = await http_factory({"raw": raw_server()})
    async with httpx.AsyncClient(base_url=base) as client:
        sid = await _initialize(client)
        r = await client.post("/mcp", headers={"accept": ACCEPT, "mcp-session-id": sid},
                              json={"jsonrpc": "2.0", "method": "notifications/initialized"})
        assert r.status_code == 202
        r = await client.post("/mcp", headers={"accept": ACCEPT, "mcp-session-id": sid},
                              json={"jsonrpc": "2.0", "id": 2, "method": "ping"})
        assert r.json() == {"jsonrpc": "2.0", "id": 2, "result": {}}
        r = await client.post("/mcp", headers={"accept": ACCEPT},
                              json={"jsonrpc": "2.0", "id": 3, "method": "ping"})
        assert r.status_code == 400 and "session" in r.json()["error"]["message"].lower()
        r = await client.delete("/mcp", headers={"mcp-session-id": sid})
        assert r.status_code == 200
        r = await client.post("/mcp", headers={"accept": ACCEPT, "mcp-session-id": sid},
                              json={"jsonrpc": "2.0", "id": 4, "method": "ping"})
        assert r.status_code == 404


async def test_legacy_get_stream_carries_list_changed(http_factory: Any) -> None:
    hangar, base = await http_factory({"raw": raw_server()})
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        sid = await _initialize(client)
        await client.post("/mcp", headers={"accept": ACCEPT, "mcp-session-id": sid},
                          json={"jsonrpc": "2.0", "method": "notifications/initialized"})
        headers = {"accept": "text/event-stream", "mcp-session-id": sid}
        async with client.stream("GET", "/mcp", headers=headers) as stream:
            assert stream.status_code == 200
            assert stream.headers["x-accel-buffering"] == "no"
            await hangar.start_server("raw")  # new tools -> list_changed to every legacy session
            async for line in stream.aiter_lines():
                if line.startswith("data:"):
                    assert "notifications/tools/list_changed" in line
                    break


async def test_dns_rebinding_protection(http_factory: Any) -> None:
    _, base = await http_factory({})
    async with httpx.AsyncClient(base_url=base) as client:
        body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        r = await client.post("/mcp", headers={"host": "evil.example", "accept": ACCEPT}, json=body)
        assert r.status_code == 421
        r = await client.post("/mcp", headers={"origin": "http://evil.example", "accept": ACCEPT}, json=body)
        assert r.status_code == 403
        r = await client.post("/mcp", headers={"origin": "http://localhost:3000", "accept": ACCEPT}, json=body)
        assert r.status_code != 403


async def test_allowed_hosts_setting(http_factory: Any) -> None:
    _, base = await http_factory({}, extra={"front": {"allowed_hosts": ["mcp.internal"]}})
    async with httpx.AsyncClient(base_url=base) as client:
        r = await client.post("/mcp", headers={"host": "mcp.internal:8000", "accept": ACCEPT},
                              json={"jsonrpc": "2.0", "id": 1, "method": "initialize",
                                    "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                                               "clientInfo": {}}})
        assert r.status_code == 200


async def test_body_limit_and_malformed_json(http_factory: Any) -> None:
    _, base = await http_factory({}, extra={"front": {"max_body_bytes": 2048}})
    async with httpx.AsyncClient(base_url=base) as client:
        r = await client.post("/mcp", headers={"accept": ACCEPT}, content=b"x" * 5000)
        assert r.status_code == 413
        r = await client.post("/mcp", headers={"accept": ACCEPT, "content-type": "application/json"},
                              content=b"{not json")
        assert r.status_code == 400 and r.json()["error"]["code"] == -32700
        r = await client.post("/mcp", headers={"accept": ACCEPT}, json=[{"jsonrpc": "2.0", "id": 1}])
        assert r.status_code == 400 and r.json()["error"]["code"] == -32600
        sid = await _initialize(client)  # still serving
        assert sid


async def test_tools_list_pagination_uses_hangar_cursors(hangar_factory: Any) -> None:
    from mcp_hangar.front import session as front_session
    from mcp_hangar.front.session import Front, FrontSession

    hangar = await hangar_factory({"raw": raw_server("--page-size", "3")})
    await hangar.start_server("raw")
    front = Front(hangar)
    session = FrontSession(front)
    await session.handle({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                          "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {}}})
    original = front_session.PAGE_SIZE
    front_session.PAGE_SIZE = 4
    try:
        names: list[str] = []
        cursor = None
        for i in range(20):
            params = {"cursor": cursor} if cursor else {}
            response = await session.handle({"jsonrpc": "2.0", "id": i + 1, "method": "tools/list", "params": params})
            assert response is not None
            names += [t["name"] for t in response["result"]["tools"]]
            cursor = response["result"].get("nextCursor")
            if cursor is None:
                break
        assert len(names) == len(set(names)) == len(front.catalog.tools())
        bad = await session.handle({"jsonrpc": "2.0", "id": 99, "method": "tools/list", "params": {"cursor": "zzz"}})
        assert bad is not None and bad["error"]["code"] == -32602
    finally:
        front_session.PAGE_SIZE = original
        front.close()


def test_long_names_are_shortened_deterministically() -> None:
    from mcp_hangar.front.naming import exposed_name

    long_tool = "a_really_long_tool_name_that_goes_on_and_on_and_on_forever_and_ever"
    first = exposed_name("server-with-a-long-id", long_tool)
    assert len(first) <= 64
    assert first == exposed_name("server-with-a-long-id", long_tool)
    assert first != exposed_name("server-with-a-long-id", long_tool + "2")
    assert exposed_name("s", "t") == "s__t"
    assert exposed_name("s", "bad name!") != "s__bad name!"
