"""The interactive parts of a call relayed through Hangar: progress, sampling, cancellation."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from mcp import Client, StdioServerParameters
from mcp.types import CreateMessageResult, TextContent

from conftest import raw_server

NPM = Path(__file__).parent / "npm" / "node_modules"
EVERYTHING = NPM / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
HANGAR = str(Path(sys.executable).parent / "mcp-hangar")
ERAS = ["legacy", "2026-07-28"]
needs_npm = pytest.mark.skipif(not EVERYTHING.exists(), reason="npm test peers missing: npm ci --prefix tests/npm")


def _stdio(tmp_path: Path, servers: dict[str, Any]) -> StdioServerParameters:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"mcp_servers": servers}))
    return StdioServerParameters(command=HANGAR, args=["serve", "-c", str(cfg), "--data-dir", str(tmp_path / "d"),
                                                       "--log-level", "WARNING"])


async def _progress_round_trip(client: Client) -> list[tuple[float, float | None, str | None]]:
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    result = await client.call_tool("raw__progress", {"steps": 3}, progress_callback=on_progress)
    assert result.content[0].text == "done"  # type: ignore[union-attr]
    return seen


@pytest.mark.parametrize("era", ERAS)
async def test_progress_reaches_the_caller_over_stdio(tmp_path: Path, era: str) -> None:
    async with Client(_stdio(tmp_path, {"raw": raw_server()}), mode=era) as client:  # type: ignore[arg-type]
        seen = await _progress_round_trip(client)
    assert seen == [(1, 3, "step 1"), (2, 3, "step 2"), (3, 3, "step 3")]


@pytest.mark.parametrize("era", ERAS)
async def test_progress_reaches_the_caller_over_http(http_factory: Any, era: str) -> None:
    hangar, base = await http_factory({"raw": raw_server()})
    await hangar.start_server("raw")
    async with Client(f"{base}/mcp", mode=era) as client:  # type: ignore[arg-type]
        seen = await _progress_round_trip(client)
    assert [p for p, _, _ in seen] == [1, 2, 3]


async def _sampler(context: Any, params: Any) -> CreateMessageResult:
    prompt = params.messages[0].content.text
    return CreateMessageResult(role="assistant", model="test-model",
                               content=TextContent(type="text", text=f"sampled: {prompt}"))


@needs_npm
async def test_sampling_request_reaches_the_originating_stdio_client(tmp_path: Path) -> None:
    params = _stdio(tmp_path, {"everything": {"command": ["node", str(EVERYTHING), "stdio"]}})
    async with Client(params, mode="legacy", sampling_callback=_sampler) as client:
        result = await asyncio.wait_for(
            client.call_tool("everything__trigger-sampling-request", {"prompt": "hi", "maxTokens": 5}), 30)
        text = " ".join(c.text for c in result.content if hasattr(c, "text"))
        assert "sampled:" in text and "test-model" in text


@needs_npm
async def test_sampling_request_reaches_the_originating_http_client(http_factory: Any) -> None:
    hangar, base = await http_factory({"everything": {"command": ["node", str(EVERYTHING), "stdio"]}})
    await hangar.start_server("everything")
    async with Client(f"{base}/mcp", mode="legacy", sampling_callback=_sampler) as client:
        result = await asyncio.wait_for(
            client.call_tool("everything__trigger-sampling-request", {"prompt": "hi", "maxTokens": 5}), 30)
        text = " ".join(c.text for c in result.content if hasattr(c, "text"))
        assert "sampled:" in text


async def test_cancellation_reaches_the_upstream(hangar_factory: Any) -> None:
    from mcp_hangar.front.session import Front, FrontSession

    hangar = await hangar_factory({"raw": raw_server()})
    await hangar.start_server("raw")
    sent: list[dict[str, Any]] = []

    async def out(message: dict[str, Any]) -> None:
        sent.append(message)

    front = Front(hangar)
    session = FrontSession(front, out)
    await session.handle({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                          "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {}}})
    call = asyncio.create_task(session.handle({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                                               "params": {"name": "raw__hang", "arguments": {}}}))
    session.in_flight[2] = call
    server = hangar.get("raw")
    async with asyncio.timeout(5):
        while server.in_flight == 0:
            await asyncio.sleep(0.01)
    await session.handle({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 2}})
    with pytest.raises(asyncio.CancelledError):
        await call
    async with asyncio.timeout(5):
        while server.in_flight:
            await asyncio.sleep(0.01)
    # The upstream connection is still good for the next call.
    result = await hangar.call_tool("raw", "echo", {"text": "after"})
    assert result["content"][0]["text"] == "after"
    assert not sent  # a cancelled request is never answered
    front.close()
