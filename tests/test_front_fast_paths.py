"""The lean paths of the HTTP front behave exactly like the full stack: a modern request runs in its ASGI
task and is still cancelled when its client goes away; /mcp skips the REST middleware only while every
layer of it would pass the request through unchanged (never with authentication on), and is still counted
in the HTTP metrics."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx

from auth_helpers import auth_on
from conftest import loaded_config, raw_server
from mcp_hangar.hangar import Hangar
from mcp_hangar.web.app import create_app

MODERN = "2026-07-28"
META = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}
HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json",
           "mcp-protocol-version": MODERN, "mcp-method": "server/discover"}
DISCOVER = {"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": META}}


def _call_request(port: int, tool: str) -> bytes:
    body = json.dumps({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                       "params": {"name": tool, "arguments": {}, "_meta": META}}).encode()
    head = (f"POST /mcp HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\n"
            f"accept: application/json, text/event-stream\r\nmcp-protocol-version: {MODERN}\r\n"
            f"mcp-method: tools/call\r\nmcp-name: {tool}\r\ncontent-length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def test_a_modern_client_that_goes_away_cancels_its_call_upstream(http_factory: Any) -> None:
    hangar, base = await http_factory({"raw": raw_server()})
    await hangar.start_server("raw")
    server = hangar.get("raw")
    port = int(base.rsplit(":", 1)[1])
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(_call_request(port, "raw__hang"))
    await writer.drain()
    async with asyncio.timeout(10):
        while server.in_flight == 0:
            await asyncio.sleep(0.01)
    writer.close()  # the client goes away mid-call
    async with asyncio.timeout(10):
        while server.in_flight:  # the call was cancelled (the upstream is told with notifications/cancelled)
            await asyncio.sleep(0.01)
    async with httpx.AsyncClient(base_url=base) as client:  # and the front keeps serving
        r = await client.post("/mcp", headers=HEADERS, json=DISCOVER)
        assert r.status_code == 200 and r.json()["result"]["supportedVersions"] == [MODERN]


def _app(tmp_path: Path) -> Any:
    return create_app(Hangar(loaded_config({}), tmp_path / "data"), manage_lifecycle=False)


def _requests_counted(app: Any, method: str, status: str) -> float:
    value = app.state.metrics.registry.get_sample_value(
        "mcp_hangar_http_requests_total", {"method": method, "route": "/mcp", "status": status})
    return float(value or 0.0)


async def test_mcp_requests_are_counted_and_cors_still_applies(tmp_path: Path) -> None:
    app = _app(tmp_path)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
        r = await client.post("/mcp", headers=HEADERS, json=DISCOVER)
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
        assert _requests_counted(app, "POST", "200") == 1
        # With an Origin header the request takes the whole stack: CORS headers are added.
        r = await client.post("/mcp", headers={**HEADERS, "origin": "http://127.0.0.1:9"}, json=DISCOVER)
        assert r.status_code == 200 and r.headers["access-control-allow-origin"]
        assert _requests_counted(app, "POST", "200") == 2
        r = await client.request("OPTIONS", "/mcp", headers={
            "origin": "http://127.0.0.1:9", "access-control-request-method": "POST"})
        assert r.status_code == 200 and "POST" in r.headers["access-control-allow-methods"]
        r = await client.put("/mcp", json=DISCOVER)  # not an MCP method: the router's envelope
        assert r.status_code == 405 and r.json()["error"] == "MethodNotAllowedError"
        assert r.headers["allow"] == "DELETE, GET, HEAD, POST"
        r = await client.get("/mcp", headers={"mcp-protocol-version": MODERN})
        assert r.status_code == 405 and _requests_counted(app, "GET", "405") == 1


async def test_with_auth_on_mcp_goes_through_the_auth_layer_and_probes_stay_public(tmp_path: Path) -> None:
    app = create_app(Hangar(loaded_config({}, auth_on()), tmp_path / "data"), manage_lifecycle=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
        r = await client.post("/mcp", headers=HEADERS, json=DISCOVER)
        assert r.status_code == 401 and r.json()["error"] == "AuthenticationError"
        assert _requests_counted(app, "POST", "401") == 1
        r = await client.get("/health/live")
        assert r.status_code == 200 and r.json() == {"status": "healthy"}
