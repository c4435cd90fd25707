"""Each upstream is probed once (server/discover, else initialize) and spoken to in its own era."""

from __future__ import annotations

import sys
from typing import Any

from conftest import raw_server, sdk_server

IGNORES_DISCOVER = r"""
import json, sys
for line in sys.stdin:
    msg = json.loads(line)
    if msg.get("method") == "initialize":
        result = {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}}, "serverInfo": {"name": "old"}}
    elif msg.get("method") == "tools/list":
        result = {"tools": [{"name": "t", "inputSchema": {"type": "object"}}]}
    else:
        continue  # ignores what it does not know, server/discover included
    print(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": result}), flush=True)
"""


async def test_dual_era_sdk_server_is_spoken_to_in_the_modern_era(hangar_factory: Any) -> None:
    hangar = await hangar_factory({"sdk": sdk_server()})
    server = await hangar.start_server("sdk")
    assert server.upstream is not None
    assert (server.upstream.era, server.upstream.protocol_version) == ("modern", "2026-07-28")
    result = await hangar.call_tool("sdk", "add", {"a": 2, "b": 2})
    assert result["structuredContent"] == {"result": 4}


async def test_legacy_only_server_falls_back_to_initialize(hangar_factory: Any) -> None:
    hangar = await hangar_factory({"raw": raw_server()})
    server = await hangar.start_server("raw")
    assert server.upstream is not None
    assert (server.upstream.era, server.upstream.protocol_version) == ("legacy", "2025-11-25")


async def test_forced_legacy_era_skips_the_probe(hangar_factory: Any) -> None:
    hangar = await hangar_factory({"sdk": sdk_server(protocol="legacy")})
    server = await hangar.start_server("sdk")
    assert server.upstream is not None and server.upstream.era == "legacy"
    assert (await hangar.call_tool("sdk", "echo", {"text": "x"}))["content"][0]["text"] == "x"


async def test_server_ignoring_the_probe_is_restarted_in_the_legacy_era(hangar_factory: Any) -> None:
    spec = {"command": [sys.executable, "-c", IGNORES_DISCOVER], "startup_timeout_s": 8}
    hangar = await hangar_factory({"old": spec})
    server = await hangar.start_server("old")
    assert server.upstream is not None and server.upstream.era == "legacy"
    assert [t["name"] for t in server.tools] == ["t"]
    assert any("legacy era" in line.content for line in server.logs)
    await server.stop()
    await hangar.start_server("old")  # remembered: no second probe
    assert sum("legacy era" in line.content for line in server.logs) == 1
