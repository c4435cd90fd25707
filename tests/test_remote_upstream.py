"""The remote upstream against a real Streamable HTTP MCP server on loopback, in both eras."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from conftest import SDK_SERVER, free_port
from mcp_hangar.errors import McpServerStartError, UpstreamRpcError, ValidationError
from mcp_hangar.upstream.remote import RemoteUpstream
from mcp_hangar.upstream.ssrf import check_endpoint_address


@pytest.fixture
async def sdk_http() -> AsyncIterator[str]:
    """The SDK fixture server over Streamable HTTP on a free loopback port."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(SDK_SERVER), "http", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        async with asyncio.timeout(20), httpx.AsyncClient() as client:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    await client.get(url)
                    break
                if proc.poll() is not None:
                    raise RuntimeError("the fixture server exited")
                await asyncio.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _upstream(url: str, **kw: Any) -> RemoteUpstream:
    return RemoteUpstream("remote", url, headers={}, auth=None, tls=None, connect_timeout=5, read_timeout=30,
                          max_message_bytes=1 << 20, on_log=lambda _: None, **kw)


@pytest.mark.parametrize("era", ["auto", "legacy"])
async def test_remote_calls_in_each_era(sdk_http: str, era: str) -> None:
    upstream = _upstream(sdk_http, era=era)
    await upstream.start(10)
    try:
        assert upstream.era == ("modern" if era == "auto" else "legacy")
        assert upstream.server_info.get("name") == "sdk-fixture"
        tools = await upstream.request("tools/list", {}, 10)
        assert {t["name"] for t in tools["tools"]} >= {"add", "echo"}
        result = await upstream.request("tools/call", {"name": "add", "arguments": {"a": 20, "b": 22}}, 10)
        assert result["structuredContent"] == {"result": 42}
        with pytest.raises(UpstreamRpcError):
            await upstream.request("nope/method", {}, 10)
    finally:
        await upstream.close()


async def test_unreachable_remote_fails_to_start() -> None:
    upstream = _upstream(f"http://127.0.0.1:{free_port()}/mcp")
    with pytest.raises(McpServerStartError) as info:
        await upstream.start(5)
    assert "unreachable" in info.value.message or "connect" in info.value.message


async def test_ssrf_check_refuses_loopback_unless_trusted(sdk_http: str) -> None:
    with pytest.raises(ValidationError):
        check_endpoint_address(sdk_http, [])
    check_endpoint_address(sdk_http, ["127.0.0.0/8"])
    upstream = _upstream(sdk_http, ssrf_trusted=[])
    with pytest.raises(McpServerStartError) as info:
        await upstream.start(5)
    assert "ssrf.trusted_networks" in info.value.message
