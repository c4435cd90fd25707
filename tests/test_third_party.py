"""A real third-party upstream: PyPI ``mcp-server-time`` (official SDK, both eras) as a subprocess server."""

from __future__ import annotations

import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mcp_hangar.errors import UpstreamRpcError


def time_server_command() -> list[str]:
    beside = Path(sys.executable).parent / "mcp-server-time"
    found = str(beside) if beside.exists() else shutil.which("mcp-server-time")
    assert found, "mcp-server-time is a test dependency: pip install -e '.[test]'"
    return [found, "--local-timezone", "UTC"]


def time_spec(**extra: Any) -> dict[str, Any]:
    return {"mode": "subprocess", "command": time_server_command(), "description": "mcp-server-time", **extra}


async def test_rest_start_lists_its_tools(api_factory: Any) -> None:
    _, client = await api_factory({"time": time_spec()})
    r = await client.post("/api/mcp_servers/time/start")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["state"] == "ready"
    assert {"get_current_time", "convert_time"} <= set(body["tools"])
    tools = {t["name"]: t for t in (await client.get("/api/mcp_servers/time/tools")).json()["tools"]}
    assert tools["get_current_time"]["inputSchema"]["required"] == ["timezone"]
    assert "outputSchema" in tools["get_current_time"]  # relayed verbatim, schema keywords included


async def test_get_current_time_through_hangar(hangar_factory: Any) -> None:
    hangar = await hangar_factory({"time": time_spec()})
    before = datetime.now(UTC).replace(microsecond=0)
    result = await hangar.call_tool("time", "get_current_time", {"timezone": "UTC"})
    after = datetime.now(UTC)
    assert result.get("isError") is not True
    structured = result["structuredContent"]
    assert structured["timezone"] == "UTC"
    assert before <= datetime.fromisoformat(structured["datetime"]) <= after
    assert result["content"][0]["type"] == "text"


async def test_convert_time_through_hangar(hangar_factory: Any) -> None:
    hangar = await hangar_factory({"time": time_spec()})
    result = await hangar.call_tool("time", "convert_time", {
        "source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"})
    structured = result["structuredContent"]
    assert structured["target"]["timezone"] == "Asia/Tokyo"
    assert structured["target"]["datetime"].endswith("21:00:00+09:00")
    assert structured["time_difference"] == "+9.0h"


async def test_tool_error_is_a_result_and_the_server_keeps_serving(hangar_factory: Any) -> None:
    hangar = await hangar_factory({"time": time_spec()})
    result = await hangar.call_tool("time", "get_current_time", {"timezone": "Not/AZone"})
    assert result["isError"] is True
    assert "Invalid timezone" in result["content"][0]["text"]
    ok = await hangar.call_tool("time", "get_current_time", {"timezone": "UTC"})
    assert ok["structuredContent"]["timezone"] == "UTC"
    assert hangar.get("time").state.value == "ready"


async def test_unknown_tool_is_a_protocol_error(hangar_factory: Any) -> None:
    hangar = await hangar_factory({"time": time_spec()})
    with pytest.raises(UpstreamRpcError) as info:
        await hangar.call_tool("time", "no_such_tool", {})
    assert info.value.error["code"] == -32602
    assert hangar.get("time").state.value == "ready"
