"""Third-party peers: the MCP Inspector CLI as a client of both fronts, and the reference
`server-everything` (Node, legacy era) as an upstream behind Hangar."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import raw_server

NPM = Path(__file__).parent / "npm" / "node_modules"
INSPECTOR = NPM / ".bin" / "inspector"
EVERYTHING = NPM / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
HANGAR = str(Path(sys.executable).parent / "mcp-hangar")

pytestmark = pytest.mark.skipif(
    not INSPECTOR.exists(), reason="npm test peers are not installed: run `npm ci --prefix tests/npm`"
)


def everything() -> dict[str, Any]:
    return {"command": ["node", str(EVERYTHING), "stdio"]}


def inspector(target: list[str], *args: str, era: str = "legacy") -> dict[str, Any]:
    proc = subprocess.run([str(INSPECTOR), "--cli", "--protocol-era", era, *target, *args, "--format", "json"],
                          capture_output=True, text=True, timeout=120)
    out = proc.stdout.strip().splitlines()
    assert out, proc.stderr
    parsed: dict[str, Any] = json.loads(out[-1])
    return parsed


def _stdio_target(tmp_path: Path, servers: dict[str, Any]) -> list[str]:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"mcp_servers": servers}))
    return ["-e", "MCP_LOG_LEVEL=WARNING", HANGAR, "serve", "-c", str(cfg), "--data-dir", str(tmp_path / "d")]


@pytest.mark.parametrize("era", ["legacy", "modern"])
def test_inspector_over_stdio(tmp_path: Path, era: str) -> None:
    target = _stdio_target(tmp_path, {"raw": raw_server(), "everything": everything()})
    listed = inspector(target, "--method", "tools/list", era=era)
    names = {t["name"] for t in listed["result"]["tools"]}
    assert {"raw__add", "everything__get-sum", "hangar_call"} <= names
    called = inspector(target, "--method", "tools/call", "--tool-name", "everything__get-sum",
                       "--tool-arg", "a=2", "b=3", era=era)
    assert called["result"]["content"][0]["text"] == "The sum of 2 and 3 is 5."


@pytest.mark.parametrize("era", ["legacy", "modern"])
async def test_inspector_over_http(http_factory: Any, era: str) -> None:
    import asyncio

    hangar, base = await http_factory({"raw": raw_server(), "everything": everything()})
    await hangar.start_server("everything")
    target = [f"{base}/mcp", "--transport", "http"]
    listed = await asyncio.to_thread(inspector, target, "--method", "tools/list", era=era)
    assert "everything__get-sum" in {t["name"] for t in listed["result"]["tools"]}
    called = await asyncio.to_thread(inspector, target, "--method", "tools/call", "--tool-name", "raw__add",
                                     "--tool-arg", "a=40", "b=2", era=era)
    assert called["result"]["structuredContent"] == {"result": 42}


async def test_server_everything_features_through_hangar(http_factory: Any) -> None:
    from mcp import Client
    from mcp.types import PromptReference

    hangar, base = await http_factory({"everything": everything()})
    await hangar.start_server("everything")
    assert hangar.get("everything").upstream is not None
    async with Client(f"{base}/mcp", mode="2026-07-28") as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert tools["everything__get-sum"].annotations is not None or "everything__get-sum" in tools
        structured = await client.call_tool("everything__get-structured-content", {"location": "New York"})
        assert structured.structured_content is not None
        resources = (await client.list_resources()).resources
        assert resources and all(str(r.uri).startswith("hangar://everything/") for r in resources)
        first = await client.read_resource(str(resources[0].uri))
        assert first.contents
        prompts = {p.name for p in (await client.list_prompts()).prompts}
        assert "everything__simple-prompt" in prompts
        got = await client.get_prompt("everything__simple-prompt")
        assert got.messages
        if "everything__completable-prompt" in prompts:
            done = await client.complete(PromptReference(type="ref/prompt", name="everything__completable-prompt"),
                                         {"name": "department", "value": "E"})
            assert done.completion.values
