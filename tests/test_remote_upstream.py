"""The remote upstream against a real Streamable HTTP MCP server on loopback, in both eras."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import free_port
from mcp_hangar.errors import McpServerStartError, UpstreamRpcError, ValidationError
from mcp_hangar.upstream.remote import RemoteUpstream
from mcp_hangar.upstream.ssrf import check_endpoint_address


def _upstream(url: str, **kw: Any) -> RemoteUpstream:
    return RemoteUpstream("remote", url, headers={}, auth=None, tls=None, connect_timeout=5, read_timeout=30,
                          max_message_bytes=1 << 20, on_log=lambda _: None, **kw)


@pytest.mark.parametrize("era", ["auto", "legacy"])
async def test_remote_calls_in_each_era(sdk_http_url: str, era: str) -> None:
    upstream = _upstream(sdk_http_url, era=era)
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


async def test_ssrf_check_refuses_loopback_unless_trusted(sdk_http_url: str) -> None:
    with pytest.raises(ValidationError):
        check_endpoint_address(sdk_http_url, [])
    check_endpoint_address(sdk_http_url, ["127.0.0.0/8"])
    upstream = _upstream(sdk_http_url, ssrf_trusted=[])
    with pytest.raises(McpServerStartError) as info:
        await upstream.start(5)
    assert "ssrf.trusted_networks" in info.value.message
