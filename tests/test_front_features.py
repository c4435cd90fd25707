"""Resources, templates, prompts and completion aggregated through the front, in both eras."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.types import PromptReference

from conftest import raw_server, sdk_server

ERAS = ["legacy", "2026-07-28"]


@pytest.mark.parametrize("era", ERAS)
async def test_resources_are_namespaced_and_readable(http_factory: Any, era: str) -> None:
    hangar, base = await http_factory({"sdk": sdk_server(), "raw": raw_server()})
    await hangar.start_server("sdk")
    await hangar.start_server("raw")  # has no resources capability: skipped, not an error
    async with Client(f"{base}/mcp", mode=era) as client:  # type: ignore[arg-type]
        resources = (await client.list_resources()).resources
        assert [str(r.uri) for r in resources] == ["hangar://sdk/memo://static/readme"]
        read = await client.read_resource("hangar://sdk/memo://static/readme")
        assert read.contents[0].text == "hello from the sdk fixture"  # type: ignore[union-attr]
        assert str(read.contents[0].uri) == "hangar://sdk/memo://static/readme"
        templates = (await client.list_resource_templates()).resource_templates
        assert [t.uri_template for t in templates] == ["hangar://sdk/memo://notes/{topic}"]
        read = await client.read_resource("hangar://sdk/memo://notes/cats")
        assert read.contents[0].text == "note about cats"  # type: ignore[union-attr]


@pytest.mark.parametrize("era", ERAS)
async def test_prompts_and_completion_are_routed(http_factory: Any, era: str) -> None:
    hangar, base = await http_factory({"sdk": sdk_server()})
    await hangar.start_server("sdk")
    async with Client(f"{base}/mcp", mode=era) as client:  # type: ignore[arg-type]
        prompts = (await client.list_prompts()).prompts
        assert [p.name for p in prompts] == ["sdk__greet"]
        got = await client.get_prompt("sdk__greet", {"name": "Ada"})
        assert "Ada" in got.messages[0].content.text  # type: ignore[union-attr]
        done = await client.complete(PromptReference(type="ref/prompt", name="sdk__greet"),
                                     {"name": "style", "value": "p"})
        assert done.completion.values == ["plain", "poetic", "pirate"]


async def test_unknown_resource_is_an_error(http_factory: Any) -> None:
    hangar, base = await http_factory({"sdk": sdk_server()})
    await hangar.start_server("sdk")
    async with Client(f"{base}/mcp", mode="legacy") as client:
        with pytest.raises(MCPError):
            await client.read_resource("hangar://nope/memo://x")


async def test_empty_namespace_keeps_upstream_names(http_factory: Any) -> None:
    hangar, base = await http_factory({"sdk": sdk_server(namespace="")})
    await hangar.start_server("sdk")
    async with Client(f"{base}/mcp", mode="legacy") as client:
        names = [t.name for t in (await client.list_tools()).tools]
        assert {"add", "echo", "slow"} <= set(names)
        assert (await client.call_tool("add", {"a": 1, "b": 1})).structured_content == {"result": 2}
        resources = (await client.list_resources()).resources
        assert [str(r.uri) for r in resources] == ["memo://static/readme"]
        read = await client.read_resource("memo://static/readme")
        assert read.contents[0].text == "hello from the sdk fixture"  # type: ignore[union-attr]
