"""The bundled demo server `math`: both protocol eras, its tools, its errors."""

from __future__ import annotations

import sys

import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError

PARAMS = StdioServerParameters(command=sys.executable, args=["-m", "mcp_hangar.demo.math_server"])


@pytest.mark.parametrize("era", ["legacy", "2026-07-28"])
async def test_math_in_both_eras(era: str) -> None:
    async with Client(PARAMS, mode=era) as client:  # type: ignore[arg-type]
        assert client.protocol_version == ("2025-11-25" if era == "legacy" else "2026-07-28")
        names = {t.name for t in (await client.list_tools()).tools}
        assert names == {"add", "subtract", "multiply", "divide", "power"}
        assert (await client.call_tool("add", {"a": 2, "b": 3})).structured_content == {"result": 5}
        assert (await client.call_tool("subtract", {"a": 2.5, "b": 1})).structured_content == {"result": 1.5}
        assert (await client.call_tool("multiply", {"a": 4, "b": 3})).structured_content == {"result": 12}
        assert (await client.call_tool("divide", {"a": 1, "b": 4})).structured_content == {"result": 0.25}
        assert (await client.call_tool("power", {"base": 2, "exponent": 10})).structured_content == {"result": 1024}
        failed = await client.call_tool("divide", {"a": 1, "b": 0})
        assert failed.is_error and "division by zero" in failed.content[0].text  # type: ignore[union-attr]
        with pytest.raises(MCPError):
            await client.call_tool("add", {"a": "x", "b": 1})


async def test_math_through_hangar_starts_fast(hangar_factory) -> None:  # type: ignore[no-untyped-def]
    from mcp_hangar.config import load_config

    spec = load_config(None).config.mcp_servers["math"].model_dump(exclude_defaults=True)
    hangar = await hangar_factory({"math": spec})
    with hangar.bus.subscription() as events:
        result = await hangar.call_tool("math", "add", {"a": 40, "b": 2})
        started = await events.wait_for(lambda e: e.event_type == "McpServerStarted", 5)
    assert result["structuredContent"] == {"result": 42}
    assert started.protocol_version == "2026-07-28"  # the probe finds it speaks the modern era
