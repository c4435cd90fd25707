"""The Discovery table of the REST spec: 404 without a `discovery:` block, source management, validation,
durability across restarts, MCP tools and metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from discovery_helpers import discovery_block, fs_source, manual_block

from conftest import loaded_config, raw_server
from mcp_hangar.config import parse_config_text
from mcp_hangar.errors import ConfigError
from mcp_hangar.front.management import Management
from mcp_hangar.hangar import Hangar
from mcp_hangar.web.app import create_app

pytestmark = pytest.mark.timeout(120)

# Every row of the spec's Discovery table, with a body where the route takes one.
DISCOVERY_ROUTES = [
    ("GET", "/api/discovery/sources", None),
    ("POST", "/api/discovery/sources", {"source_type": "docker", "mode": "additive", "enabled": True,
                                       "config": {"socket_path": "/var/run/docker.sock"}}),
    ("PUT", "/api/discovery/sources/x", {"mode": "authoritative"}),
    ("DELETE", "/api/discovery/sources/x", None),
    ("POST", "/api/discovery/sources/x/scan", None),
    ("PUT", "/api/discovery/sources/x/enable", {"enabled": False}),
    ("GET", "/api/discovery/pending", None),
    ("GET", "/api/discovery/quarantined", None),
    ("POST", "/api/discovery/approve/x", None),
    ("POST", "/api/discovery/reject/x", None),
]


def test_the_table_covers_every_discovery_route(tmp_path: Path) -> None:
    app = create_app(Hangar(loaded_config({}), tmp_path / "data"))
    served = {(m, p) for p, ops in app.api.openapi()["paths"].items() for m in ops if p.startswith("/api/discovery")}
    listed = {(m.lower(), p.replace("/x", "/{source_id}", 1) if "sources/" in p else p.replace("/x", "/{name}"))
              for m, p, _ in DISCOVERY_ROUTES}
    assert served == listed


@pytest.mark.parametrize(("method", "path", "body"), DISCOVERY_ROUTES)
async def test_without_a_discovery_block_every_route_is_a_404_envelope(api_factory: Any, method: str, path: str,
                                                                       body: Any) -> None:
    _, client = await api_factory({})
    for payload in (body, {"not": "valid"}):  # 404 comes first, whatever the body
        response = await client.request(method, path, json=payload)
        assert response.status_code == 404
        assert response.json() == {"error": "DiscoveryNotConfigured", "status_code": 404,
                                   "message": "discovery is not configured: add a 'discovery:' block to the "
                                              "config file"}


@pytest.mark.parametrize("tool", ["hangar_discover", "hangar_discovered", "hangar_quarantine", "hangar_approve"])
async def test_without_a_discovery_block_the_mcp_tools_say_so(hangar_factory: Any, tool: str) -> None:
    hangar = await hangar_factory({})
    result = await Management(hangar).call(tool, {"mcp_server": "x"})
    assert result["isError"] is True and result["structuredContent"]["error"] == "DiscoveryNotConfigured"


def test_an_unknown_source_type_in_the_file_is_located_and_lists_the_valid_types() -> None:
    text = "discovery:\n  sources:\n    - source_type: kubernetes\n      mode: additive\n"
    with pytest.raises(ConfigError) as caught:
        parse_config_text(text, "hangar.yaml")
    message = caught.value.message
    assert message.startswith("hangar.yaml:3: discovery.sources.0: the kubernetes source is not available")
    assert "valid types: docker, entrypoint, filesystem" in message


def test_a_misspelt_discovery_key_gets_a_suggestion() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config_text("discovery:\n  refresh_intervall_s: 5\n", "hangar.yaml")
    assert caught.value.message == ("hangar.yaml:2: discovery.refresh_intervall_s: unknown key "
                                    "'refresh_intervall_s' (did you mean 'refresh_interval_s'?)")


def test_a_bare_discovery_block_turns_discovery_on_with_defaults() -> None:
    cfg, _, _ = parse_config_text("discovery:\n", "hangar.yaml")
    assert cfg.discovery is not None and cfg.discovery.auto_register is False and cfg.discovery.sources == []
    assert parse_config_text("mcp_servers: {}\n", "hangar.yaml")[0].discovery is None


async def test_an_unknown_source_type_is_a_422_listing_the_valid_types(api_factory: Any) -> None:
    _, client = await api_factory({}, extra=discovery_block())
    response = await client.post("/api/discovery/sources", json={"source_type": "zookeeper", "mode": "additive"})
    assert response.status_code == 422
    assert response.json()["message"].startswith("unknown source_type 'zookeeper'; valid types: docker, "
                                                 "entrypoint, filesystem")
    bad_mode = await client.post("/api/discovery/sources", json={"source_type": "docker", "mode": "sometimes"})
    assert bad_mode.status_code == 422 and bad_mode.json()["error"] == "ValidationError"


async def test_sources_are_registered_updated_enabled_and_removed(api_factory: Any, tmp_path: Path) -> None:
    folder = tmp_path / "specs"
    folder.mkdir()
    (folder / "alpha.yaml").write_text(yaml.safe_dump(raw_server()))
    hangar, client = await api_factory({}, extra=discovery_block())
    created = await client.post("/api/discovery/sources", json={
        "source_type": "filesystem", "mode": "additive", "config": {"path": str(folder)}, "id": "specs"})
    assert created.status_code == 201 and created.json() == {"source_id": "specs", "registered": True}
    dup = await client.post("/api/discovery/sources", json={"source_type": "filesystem", "mode": "additive",
                                                            "config": {"path": str(folder)}, "id": "specs"})
    assert dup.status_code == 409
    scan = (await client.post("/api/discovery/sources/specs/scan")).json()
    assert scan["scan_triggered"] is True and scan["mcp_servers_found"] == 1 and scan["pending"] == ["alpha"]
    updated = await client.put("/api/discovery/sources/specs", json={"mode": "authoritative"})
    assert updated.status_code == 200 and updated.json()["source"]["mode"] == "authoritative"
    assert (await client.put("/api/discovery/sources/specs", json={"source_type": "docker"})).status_code == 422
    disabled = await client.put("/api/discovery/sources/specs/enable", json={"enabled": False})
    assert disabled.json() == {"source_id": "specs", "enabled": False}
    rows = (await client.get("/api/discovery/sources")).json()["sources"]
    assert [(r["id"], r["source_type"], r["mode"], r["is_enabled"], r["origin"]) for r in rows] == \
        [("specs", "filesystem", "authoritative", False, "api")]
    assert (await client.delete("/api/discovery/sources/specs")).json() == {"source_id": "specs",
                                                                             "deregistered": True}
    assert (await client.get("/api/discovery/sources")).json()["sources"] == []
    assert (await client.get("/api/discovery/pending")).json()["pending"] == []  # its proposals went with it
    missing = await client.post("/api/discovery/sources/specs/scan")
    assert missing.status_code == 404 and missing.json()["error"] == "DiscoverySourceNotFoundError"
    assert hangar.discovery is not None and not hangar.discovery.sources


async def test_an_unreadable_source_is_unhealthy_and_nothing_crashes(api_factory: Any, tmp_path: Path) -> None:
    dead = {"id": "engine", "source_type": "docker", "mode": "authoritative",
            "config": {"socket_path": str(tmp_path / "nothing.sock"), "timeout_s": 2}}
    hangar, client = await api_factory({"ok": raw_server()}, extra=manual_block(dead))
    with hangar.bus.subscription() as sub:
        response = await client.post("/api/discovery/sources/engine/scan")
        health = await sub.wait_for(lambda e: e.event_type == "DiscoverySourceHealthChanged", 5)
    assert response.status_code == 503 and response.json()["error"] == "DiscoverySourceError"
    assert health.is_healthy is False  # type: ignore[attr-defined]
    row = (await client.get("/api/discovery/sources")).json()["sources"][0]
    assert row["is_healthy"] is False and "nothing.sock" in row["error_message"] and row["errors"] >= 1
    assert (await hangar.call_tool("ok", "add", {"a": 1, "b": 1}))["structuredContent"] == {"result": 2}


async def test_sources_and_decisions_survive_a_restart(api_factory: Any, tmp_path: Path) -> None:
    folder, data = tmp_path / "specs", tmp_path / "state"
    folder.mkdir()
    for name in ("keep", "nope"):
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(raw_server()))
    hangar, client = await api_factory({}, data_dir=data, extra=discovery_block())
    await client.post("/api/discovery/sources", json={"source_type": "filesystem", "mode": "additive",
                                                      "config": {"path": str(folder)}, "id": "specs"})
    await client.post("/api/discovery/sources/specs/scan")
    assert (await client.post("/api/discovery/approve/keep")).status_code == 200
    assert (await client.post("/api/discovery/reject/nope")).status_code == 200
    await client.aclose()
    await hangar.aclose()

    again, client2 = await api_factory({}, data_dir=data, extra=discovery_block())
    rows = (await client2.get("/api/discovery/sources")).json()["sources"]
    assert [(r["id"], r["origin"]) for r in rows] == [("specs", "api")]
    server = again.get("keep")
    assert server.source == "discovery" and server.state.value == "cold"
    assert (await again.call_tool("keep", "add", {"a": 2, "b": 2}))["structuredContent"] == {"result": 4}
    scan = (await client2.post("/api/discovery/sources/specs/scan")).json()
    assert scan["pending"] == [] and scan["approved"] == ["keep"]  # the rejection is remembered
    assert again.discovery is not None and again.discovery.records["nope"].status == "rejected"
    deleted = await client2.delete("/api/mcp_servers/keep")  # deleting it forgets the approval
    assert deleted.status_code == 200 and "keep" not in again.discovery.records


async def test_the_mcp_tools_discover_list_quarantine_and_approve(hangar_factory: Any, tmp_path: Path) -> None:
    (tmp_path / "alpha.yaml").write_text(yaml.safe_dump(raw_server()))
    (tmp_path / "bad.yaml").write_text("mode: remote\n")
    hangar = await hangar_factory({}, extra=manual_block(fs_source(tmp_path)))
    tools = Management(hangar)
    found = (await tools.call("hangar_discover", {}))["structuredContent"]
    assert found["pending"] == 1 and found["quarantined"] == 1
    assert found["sources"][0]["discovered"] == ["alpha", "bad"]
    listed = (await tools.call("hangar_discovered", {}))["structuredContent"]["discovered"]
    assert [(r["name"], r["status"]) for r in listed] == [("alpha", "pending"), ("bad", "quarantined")]
    quarantine = (await tools.call("hangar_quarantine", {}))["structuredContent"]["quarantined"]
    assert "mode 'remote' needs an 'endpoint'" in quarantine["bad"]["reason"]
    approved = await tools.call("hangar_approve", {"mcp_server": "alpha"})
    assert approved["isError"] is False and hangar.get("alpha").source == "discovery"


async def test_discovery_metrics_are_per_source(api_factory: Any, tmp_path: Path) -> None:
    (tmp_path / "alpha.yaml").write_text(yaml.safe_dump(raw_server()))
    _, client = await api_factory({}, extra=manual_block(fs_source(tmp_path)))
    await client.post("/api/discovery/sources/files/scan")
    text = (await client.get("/metrics")).text
    assert 'mcp_hangar_discovery_cycles_total{source="files"}' in text
    assert 'mcp_hangar_discovery_mcp_servers{source="files"} 1.0' in text
    assert 'mcp_hangar_discovery_last_cycle_timestamp_seconds{source="files"}' in text
    assert 'mcp_hangar_discovery_errors_total{source="files"} 0.0' in text
