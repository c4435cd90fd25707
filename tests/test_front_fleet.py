"""Claude-Desktop-style use: one Python, one Node and one remote server behind Hangar, seen as one
merged, namespaced MCP server over both fronts in both eras; MCP traffic shows in history and metrics."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from mcp import Client, StdioServerParameters

from conftest import raw_server, stdio_hangar

NPM = Path(__file__).parent / "npm" / "node_modules"
EVERYTHING = NPM / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
HANGAR = str(Path(sys.executable).parent / "mcp-hangar")
ERAS = ["legacy", "2026-07-28"]
EXPECTED = {"python__add", "node__get-sum", "remote__add", "hangar_status"}

pytestmark = pytest.mark.skipif(not EVERYTHING.exists(), reason="npm test peers missing: npm ci --prefix tests/npm")


def fleet(remote: str) -> dict[str, Any]:
    return {
        "python": raw_server(),
        "node": {"command": ["node", str(EVERYTHING), "stdio"]},
        "remote": {"mode": "remote", "endpoint": remote},
    }


async def _exercise(client: Client) -> None:
    names = {t.name for t in (await client.list_tools()).tools}
    assert names >= EXPECTED
    assert (await client.call_tool("python__add", {"a": 1, "b": 2})).structured_content == {"result": 3}
    node = await client.call_tool("node__get-sum", {"a": 2, "b": 3})
    assert "5" in node.content[0].text  # type: ignore[union-attr]
    assert (await client.call_tool("remote__add", {"a": 20, "b": 22})).structured_content == {"result": 42}


@pytest.mark.parametrize("era", ERAS)
async def test_fleet_over_stdio(tmp_path: Path, sdk_http_url: str, era: str) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"mcp_servers": fleet(sdk_http_url)}))
    params = StdioServerParameters(command=HANGAR, args=["serve", "-c", str(cfg), "--data-dir", str(tmp_path / "d")],
                                   env={**os.environ, "MCP_LOG_LEVEL": "WARNING"})
    async with Client(params, mode=era) as client:  # type: ignore[arg-type]
        await _exercise(client)


@pytest.mark.parametrize("era", ERAS)
async def test_fleet_over_http_shows_in_history_and_metrics(http_factory: Any, sdk_http_url: str, era: str) -> None:
    hangar, base = await http_factory(fleet(sdk_http_url))
    async with Client(f"{base}/mcp", mode=era) as client:  # type: ignore[arg-type]
        await _exercise(client)
    assert hangar.get("remote").upstream is not None and hangar.get("remote").upstream.era == "modern"
    assert hangar.get("node").upstream is not None and hangar.get("node").upstream.era == "legacy"
    async with httpx.AsyncClient(base_url=base) as rest:
        history = (await rest.get("/api/mcp_servers/remote/tools/history")).json()
        assert history["total"] == 1 and history["history"][0]["tool_name"] == "add"
        metrics = (await rest.get("/metrics")).text
        assert 'mcp_hangar_tool_calls_total{mcp_server="node",outcome="success",tool="get-sum"} 1.0' in metrics


async def test_malformed_input_on_stdio_gets_jsonrpc_errors(tmp_path: Path) -> None:
    proc = await stdio_hangar(tmp_path, {"python": raw_server()})
    assert proc.stdin is not None and proc.stdout is not None
    try:
        lines = [b"this is not json", b'{"jsonrpc": "2.0", "id": 1}', b"[1, 2]", b'{"jsonrpc": "2.0", "id": 2, '
                 b'"method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, '
                 b'"clientInfo": {"name": "t"}}}']
        proc.stdin.write(b"\n".join(lines) + b"\n")
        await proc.stdin.drain()
        answers = [orjson.loads(await asyncio.wait_for(proc.stdout.readline(), 20)) for _ in range(4)]
        by_id = {a.get("id"): a for a in answers}
        assert [a["error"]["code"] for a in answers if a.get("id") is None] == [-32700, -32600]
        assert by_id[1]["error"]["code"] == -32600
        assert by_id[2]["result"]["serverInfo"]["name"] == "mcp-hangar"
    finally:
        proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
