"""Real MCP clients (the official SDK) against Hangar's fronts: stdio (the real CLI) and HTTP, both eras."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError

from conftest import raw_server, sdk_server
from fixtures.raw_server import RICH_RESULT

HANGAR = str(Path(sys.executable).parent / "mcp-hangar")
ERAS = ["legacy", "2026-07-28"]


def _stdio_params(tmp_path: Path, servers: dict[str, Any], **sections: Any) -> StdioServerParameters:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"mcp_servers": servers, **sections}))
    return StdioServerParameters(
        command=HANGAR,
        args=["serve", "-c", str(cfg), "--data-dir", str(tmp_path / "data"), "--log-level", "WARNING"],
    )


def _tool_names(result: Any) -> list[str]:
    return [t.name for t in result.tools]


@pytest.mark.parametrize("era", ERAS)
async def test_stdio_front_lists_and_calls_in_both_eras(tmp_path: Path, era: str) -> None:
    params = _stdio_params(tmp_path, {"raw": raw_server(), "sdk": sdk_server()})
    async with Client(params, mode=era) as client:  # type: ignore[arg-type]
        expected = "2025-11-25" if era == "legacy" else "2026-07-28"
        assert client.protocol_version == expected
        # Cold servers with unknown tools are routed by name and start on the first call.
        result = await client.call_tool("raw__add", {"a": 2, "b": 40})
        assert result.structured_content == {"result": 42}
        result = await client.call_tool("sdk__add", {"a": 1, "b": 2})
        assert result.structured_content == {"result": 3}
        names = _tool_names(await client.list_tools())
        assert {"raw__echo", "raw__add", "sdk__add", "sdk__echo", "hangar_list", "hangar_call"} <= set(names)
        status = await client.call_tool("hangar_list", {})
        assert status.structured_content is not None
        states = {s["mcp_server_id"]: s["state"] for s in status.structured_content["mcp_servers"]}
        assert states == {"raw": "ready", "sdk": "ready"}


@pytest.mark.parametrize("era", ERAS)
async def test_http_front_lists_and_calls_in_both_eras(http_factory: Any, era: str) -> None:
    hangar, base = await http_factory({"raw": raw_server()})
    await hangar.start_server("raw")
    async with Client(f"{base}/mcp", mode=era) as client:  # type: ignore[arg-type]
        expected = "2025-11-25" if era == "legacy" else "2026-07-28"
        assert client.protocol_version == expected
        assert "raw__echo" in _tool_names(await client.list_tools())
        result = await client.call_tool("raw__echo", {"text": "héllo"})
        assert result.content[0].text == "héllo"  # type: ignore[union-attr]


@pytest.mark.parametrize("era", ERAS)
async def test_results_and_schemas_are_relayed_verbatim(http_factory: Any, era: str) -> None:
    hangar, base = await http_factory({"raw": raw_server()})
    await hangar.start_server("raw")
    upstream_rich = next(t for t in hangar.get("raw").tools if t["name"] == "rich")
    async with Client(f"{base}/mcp", mode=era) as client:  # type: ignore[arg-type]
        tools = {t.name: t for t in (await client.list_tools()).tools}
        schema = tools["raw__rich"].input_schema
        assert schema["$defs"] == upstream_rich["inputSchema"]["$defs"]
        assert schema["x-vendor-extension"] == {"kept": True}
        result = await client.call_tool("raw__rich", {})
        assert result.structured_content == RICH_RESULT["structuredContent"]
        assert result.is_error is False


async def test_raw_relay_keeps_every_field(hangar_factory: Any) -> None:
    """Below the SDK's typed models: the front's JSON-RPC answer is the upstream's result, unchanged."""
    from mcp_hangar.front.session import Front, FrontSession

    hangar = await hangar_factory({"raw": raw_server()})
    front = Front(hangar)
    session = FrontSession(front)
    await session.handle({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                          "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {}}})
    response = await session.handle({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                                     "params": {"name": "raw__rich", "arguments": {}}})
    assert response is not None
    assert response["result"] == RICH_RESULT
    front.close()


async def test_tool_failure_stays_a_result(http_factory: Any) -> None:
    _hangar, base = await http_factory({"raw": raw_server()})
    async with Client(f"{base}/mcp", mode="legacy") as client:
        result = await client.call_tool("raw__fail", {})
        assert result.is_error is True
        assert result.content[0].text == "tool failed"  # type: ignore[union-attr]


@pytest.mark.parametrize("era", ERAS)
async def test_unknown_tool_is_a_jsonrpc_error(http_factory: Any, era: str) -> None:
    _, base = await http_factory({"raw": raw_server()})
    async with Client(f"{base}/mcp", mode=era) as client:  # type: ignore[arg-type]
        with pytest.raises(MCPError) as info:
            await client.call_tool("nope__nothing", {})
        assert info.value.error.code == -32602


async def test_crash_mid_call_errors_within_a_second_and_others_keep_working(http_factory: Any) -> None:
    hangar, base = await http_factory({"raw": raw_server(), "other": raw_server()})
    await hangar.start_server("raw")
    await hangar.start_server("other")
    async with Client(f"{base}/mcp", mode="legacy") as client:
        loop = asyncio.get_running_loop()
        began = loop.time()
        with pytest.raises(MCPError) as info:
            await client.call_tool("raw__crash", {})
        assert loop.time() - began < 1.0
        assert "exited" in info.value.error.message
        result = await client.call_tool("other__echo", {"text": "still here"})
        assert result.content[0].text == "still here"  # type: ignore[union-attr]


async def test_hang_gives_a_timeout_error(http_factory: Any) -> None:
    hangar, base = await http_factory({"raw": raw_server(call_timeout_s=0.5)})
    await hangar.start_server("raw")
    async with Client(f"{base}/mcp", mode="2026-07-28") as client:
        with pytest.raises(MCPError) as info:
            await client.call_tool("raw__hang", {})
        assert info.value.error.code == -32001
        assert "0.5 s" in info.value.error.message


async def test_hangar_call_fans_out(http_factory: Any) -> None:
    _hangar, base = await http_factory({"a": raw_server(), "b": raw_server()})
    async with Client(f"{base}/mcp", mode="legacy") as client:
        calls = [{"mcp_server": "a", "tool": "add", "arguments": {"a": i, "b": 1}} for i in range(5)]
        calls.append({"mcp_server": "b", "tool": "fail", "arguments": {}})
        calls.append({"mcp_server": "missing", "tool": "x"})
        result = await client.call_tool("hangar_call", {"calls": calls, "max_concurrency": 3})
        body = result.structured_content
        assert body is not None
        assert body["total"] == 7 and body["succeeded"] == 5 and body["failed"] == 2
        assert [r["result"]["structuredContent"]["result"] for r in body["results"][:5]] == [1, 2, 3, 4, 5]
        assert body["results"][6]["error_type"] == "McpServerNotFoundError"
        assert all(r["elapsed_ms"] >= 0 for r in body["results"])


async def test_hangar_call_of_one_call_and_its_timeouts(http_factory: Any) -> None:
    # A batch of one runs on its own path (no semaphore or task): the same entry shape, the same timeouts.
    _hangar, base = await http_factory({"raw": raw_server()})
    async with Client(f"{base}/mcp", mode="2026-07-28") as client:
        one = (await client.call_tool("hangar_call", {"calls": [
            {"mcp_server": "raw", "tool": "add", "arguments": {"a": 2, "b": 3}}]})).structured_content
        assert one is not None and one["total"] == 1 and one["success"] is True
        entry = one["results"][0]
        assert list(entry) == ["index", "call_id", "mcp_server", "tool", "success", "result", "error", "error_type",
                               "elapsed_ms"]
        assert entry["call_id"] == f"{one['batch_id']}:0" and len(one["batch_id"]) == 32
        assert entry["result"]["structuredContent"]["result"] == 5
        hung = (await client.call_tool("hangar_call", {"calls": [
            {"mcp_server": "raw", "tool": "hang", "arguments": {}, "timeout": 0.3}]})).structured_content
        assert hung is not None and hung["success"] is False
        assert (hung["results"][0]["error"], hung["results"][0]["error_type"]) == ("timed out", "TimeoutError")
        for bad in ("soon", -1, 301, True):  # refused before anything runs, instead of an internal error
            refused = await client.call_tool("hangar_call", {"calls": [
                {"mcp_server": "raw", "tool": "add", "arguments": {"a": 1, "b": 1}, "timeout": bad}]})
            assert refused.is_error and "calls[0].timeout" in refused.structured_content["message"]
        refused = await client.call_tool("hangar_call", {"calls": [{"mcp_server": "raw", "tool": "add"}],
                                                         "timeout": True})  # a boolean is no number of seconds
        assert refused.is_error and "'timeout'" in refused.structured_content["message"]


async def test_list_changed_reaches_legacy_clients(tmp_path: Path) -> None:
    changed = asyncio.Event()

    async def on_message(message: Any) -> None:
        if getattr(getattr(message, "root", message), "method", None) == "notifications/tools/list_changed":
            changed.set()

    params = _stdio_params(tmp_path, {"raw": raw_server()}, front={"discovery_timeout_s": 0})
    async with Client(params, mode="legacy", message_handler=on_message) as client:  # type: ignore[call-arg]
        names = _tool_names(await client.list_tools())
        assert "raw__echo" not in names  # never started, nothing declared, and the list did not wait
        # Listing started discovery in the background; the tools arrive with a notification.
        await asyncio.wait_for(changed.wait(), 10)
        assert "raw__echo" in _tool_names(await client.list_tools())


async def test_first_list_waits_for_never_started_servers(tmp_path: Path) -> None:
    params = _stdio_params(tmp_path, {"raw": raw_server(), "broken": {"command": ["/nonexistent/cmd"]}})
    async with Client(params, mode="legacy") as client:
        names = _tool_names(await client.list_tools())
        assert "raw__echo" in names  # started once to learn its tools
        status = (await client.call_tool("hangar_status", {})).structured_content
        assert status is not None
        broken = next(s for s in status["mcp_servers"] if s["mcp_server_id"] == "broken")
        assert broken["state"] == "dead" and "/nonexistent/cmd" in broken["why"]
