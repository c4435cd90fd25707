"""Discovery from Python entry points, with the test package tests/entrypoint_pkg installed in the venv
(scripts/test installs it): its server appears, is approved and works; its broken entry point is quarantined;
its plug-in source type is usable like a built-in one."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

import pytest
from discovery_helpers import discovery_block, manual_block

from conftest import raw_server

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not any(ep.name == "ep-demo" for ep in entry_points(group="mcp_hangar.servers")),
                       reason="the test package is not installed: pip install -e tests/entrypoint_pkg"),
]

ENTRYPOINTS = {"id": "packages", "source_type": "entrypoint", "mode": "additive"}


async def test_the_test_packages_server_appears_and_works(api_factory: Any) -> None:
    hangar, client = await api_factory({}, extra=manual_block(ENTRYPOINTS))
    found = (await client.post("/api/discovery/sources/packages/scan")).json()
    assert found["discovered"] == ["ep-broken", "ep-demo"] and found["pending"] == ["ep-demo"]
    pending = (await client.get("/api/discovery/pending")).json()["pending"][0]
    assert pending["origin"] == "entry point ep-demo = hangar_entrypoint_demo.servers:demo"
    assert pending["tools"] == ["greet"]
    assert (await client.post("/api/discovery/approve/ep-demo")).status_code == 200
    result = await hangar.call_tool("ep-demo", "greet", {"who": "hangar"})
    assert result["content"] == [{"type": "text", "text": "hello hangar"}]


async def test_an_entry_point_that_raises_is_quarantined_with_the_error(api_factory: Any) -> None:
    _, client = await api_factory({}, extra=manual_block(ENTRYPOINTS))
    await client.post("/api/discovery/sources/packages/scan")
    quarantined = (await client.get("/api/discovery/quarantined")).json()["quarantined"]
    assert list(quarantined) == ["ep-broken"]
    assert quarantined["ep-broken"]["reason"] == ("entry point ep-broken = hangar_entrypoint_demo.servers:broken "
                                                  "failed: RuntimeError: this entry point is broken on purpose")


async def test_a_plug_in_source_type_from_an_entry_point_works(api_factory: Any) -> None:
    hangar, client = await api_factory({}, extra=discovery_block())
    body = {"source_type": "static", "mode": "additive", "id": "mine",
            "config": {"servers": {"plugged": raw_server()}}}
    assert (await client.post("/api/discovery/sources", json=body)).status_code == 201
    assert (await client.post("/api/discovery/sources/mine/scan")).json()["pending"] == ["plugged"]
    bad = await client.post("/api/discovery/sources", json={**body, "id": "bad", "config": {"servers": 3}})
    assert bad.status_code == 422 and bad.json()["message"].startswith("config of a static source: servers:")
    assert hangar.discovery is not None
