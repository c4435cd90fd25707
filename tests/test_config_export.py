"""Export round-trips: a new Hangar started on the export has the same state (file and REST servers, groups,
discovery sources, approved servers); secrets stay ``${ENV}`` references or are redacted, never leaked."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import yaml
from config_helpers import NO_WATCH, file_hangar, write_config
from discovery_helpers import fs_source

from conftest import raw_server
from mcp_hangar.config_state import document_of_state

__all__ = ["file_hangar"]

TOKEN = "tok-from-env-8d1f"  # behind ${TEST_EXPORT_TOKEN}
LITERAL = "hunter2-literal-77"  # written literally in the file
REST_SECRET = "rest-secret-5c2a"  # sent through REST


async def _busy_hangar(file_hangar: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any, Path]:
    """A Hangar whose state comes from the file, REST and discovery."""
    monkeypatch.setenv("TEST_EXPORT_TOKEN", TOKEN)
    proposals = tmp_path / "proposals"
    proposals.mkdir()
    (proposals / "alpha.yaml").write_text(yaml.safe_dump(raw_server(description="found")))
    second = tmp_path / "second"
    second.mkdir()
    doc = {
        "mcp_servers": {
            "math": raw_server(env={"API_TOKEN": "${TEST_EXPORT_TOKEN}", "PLAIN": "x$$y", "MODE": "fast"}),
            "lit": raw_server(env={"DB_PASSWORD": LITERAL}),
        },
        "groups": {"pool": {"members": ["math", "lit"], "strategy": "priority", "auto_start": False}},
        "discovery": {"enabled": False, "sources": [fs_source(proposals)]},
        "front": {"tool_separator": "."},
        **NO_WATCH,
    }
    hangar, client, path = await file_hangar(doc)
    created = await client.post("/api/mcp_servers", json={"mcp_server_id": "rest1", **raw_server(
        env={"SERVICE_KEY": REST_SECRET, "DOLLAR": "${NOT_A_REF}"}, description="made by REST")})
    assert created.status_code == 201, created.text
    assert (await client.post("/api/groups", json={"group_id": "restgroup", "strategy": "round_robin"})).status_code \
        == 201
    assert (await client.post("/api/groups/restgroup/members", json={"member_id": "rest1", "weight": 2})).status_code \
        == 201
    source = await client.post("/api/discovery/sources", json={
        "source_type": "filesystem", "mode": "additive", "enabled": False, "config": {"path": str(second)}})
    assert source.status_code == 201, source.text
    await hangar.discovery.scan("files")
    assert (await client.post("/api/discovery/approve/alpha")).status_code == 200
    assert (await client.put("/api/mcp_servers/math", json={"description": "changed at run time"})).status_code \
        == 200
    return hangar, client, path


async def test_export_then_a_new_hangar_on_it_reproduces_the_same_state(
        file_hangar: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hangar, client, _ = await _busy_hangar(file_hangar, tmp_path, monkeypatch)
    r = await client.post("/api/config/export")
    assert r.status_code == 200, r.text
    exported = r.json()
    text = exported["yaml"]
    assert "${TEST_EXPORT_TOKEN}" in text and TOKEN not in text
    assert LITERAL not in text and REST_SECRET not in text
    assert sorted(exported["redacted"]) == ["mcp_servers.lit.env.DB_PASSWORD", "mcp_servers.rest1.env.SERVICE_KEY"]
    assert "REDACTED" in text.split("mcp_servers:")[0]  # the header says so
    monkeypatch.setenv("HANGAR_REDACTED_MCP_SERVERS_LIT_ENV_DB_PASSWORD", LITERAL)
    monkeypatch.setenv("HANGAR_REDACTED_MCP_SERVERS_REST1_ENV_SERVICE_KEY", REST_SECRET)

    fresh, fresh_client, _ = await file_hangar(text, data_dir=tmp_path / "fresh-data")
    original = document_of_state(hangar)
    assert document_of_state(fresh) == original
    assert original["mcp_servers"]["rest1"]["env"]["DOLLAR"] == "${NOT_A_REF}"  # literal $ survives
    assert original["mcp_servers"]["math"]["env"]["PLAIN"] == "x$y"
    assert set(original["mcp_servers"]) == {"math", "lit", "rest1", "alpha"}
    assert set(original["groups"]) == {"pool", "restgroup"}
    assert len(original["discovery"]["sources"]) == 2
    assert (await fresh_client.get("/api/config")).json() == (await client.get("/api/config")).json()
    assert fresh.servers["rest1"].spec.env["SERVICE_KEY"] == REST_SECRET
    groups = {g.group_id: [(m.member_id, m.weight) for m in g.members] for g in fresh.groups.all()}
    assert groups == {"pool": [("math", 1), ("lit", 1)], "restgroup": [("rest1", 2)]}
    again = (await fresh_client.post("/api/config/export")).json()  # its secrets are references now
    assert again["redacted"] == [] and "${HANGAR_REDACTED_MCP_SERVERS_LIT_ENV_DB_PASSWORD}" in again["yaml"]


async def test_literal_secrets_only_when_asked_and_then_it_round_trips_without_help(
        file_hangar: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hangar, client, _ = await _busy_hangar(file_hangar, tmp_path, monkeypatch)
    r = await client.post("/api/config/export", json={"include_secrets": True})
    text = r.json()["yaml"]
    assert LITERAL in text and REST_SECRET in text and r.json()["redacted"] == []
    assert "${TEST_EXPORT_TOKEN}" in text  # a reference stays a reference
    fresh, _, _ = await file_hangar(text, data_dir=tmp_path / "fresh-data")
    assert document_of_state(fresh) == document_of_state(hangar)
    for lax in ("please", "yes", 1):  # strictly a boolean: writing secrets out is never a guess
        refused = await client.post("/api/config/export", json={"include_secrets": lax})
        assert refused.status_code == 422 and refused.json()["error"] == "ValidationError"


async def test_starting_on_an_export_with_a_redacted_secret_unset_fails_clearly(
        file_hangar: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, client, _ = await _busy_hangar(file_hangar, tmp_path, monkeypatch)
    text = (await client.post("/api/config/export")).json()["yaml"]
    path = tmp_path / "exported.yaml"
    write_config(path, text)
    from mcp_hangar.config import load_config
    from mcp_hangar.errors import ConfigError

    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert "HANGAR_REDACTED_MCP_SERVERS_LIT_ENV_DB_PASSWORD" in refused.value.message


async def test_secrets_never_appear_in_get_config_the_diff_or_logs(
        file_hangar: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    _, client, _ = await _busy_hangar(file_hangar, tmp_path, monkeypatch)
    await client.post("/api/mcp_servers/lit/start")
    await client.post("/api/config/reload")
    view = await client.get("/api/config")
    assert view.status_code == 200
    config = view.json()["config"]
    assert config["mcp_servers"]["lit"]["env"]["DB_PASSWORD"] == "***"
    assert config["mcp_servers"]["math"]["env"]["API_TOKEN"] == "***"
    assert config["mcp_servers"]["math"]["env"]["MODE"] == "fast"  # not secret-looking: shown
    diff = (await client.get("/api/config/diff")).text
    await client.post("/api/config/export")
    for secret in (TOKEN, LITERAL, REST_SECRET):
        assert secret not in view.text and secret not in diff
        assert secret not in caplog.text
    assert caplog.text  # the logs were captured at all


def test_secret_values_are_masked_at_any_depth() -> None:
    from mcp_hangar.config_state import sanitize

    doc = {"a": {"b": [{"client_secret": "s1", "x": 1}, {"nested": {"Password": "s2", "auth": {"type": "bearer",
                                                                                                "bearer_token": "s3",
                                                                                                "user": "s4"}}}]},
           "headers": {"Authorization": "Bearer s5", "X-API-Key": "s6", "Accept": "json"}, "api_key": 1234,
           "tools": [{"name": "t", "inputSchema": {"properties": {"api_key": {"type": "string"}}}}], "flag": True}
    out = sanitize(doc)
    assert out == {"a": {"b": [{"client_secret": "***", "x": 1}, {"nested": {"Password": "***", "auth": {
        "type": "bearer", "bearer_token": "***", "user": "***"}}}]},
        "headers": {"Authorization": "***", "X-API-Key": "***", "Accept": "json"}, "api_key": "***",
        "tools": [{"name": "t", "inputSchema": {"properties": {"api_key": {"type": "string"}}}}], "flag": True}


async def test_server_details_mask_secret_values_too(api_factory: Any) -> None:
    _, client = await api_factory({"a": raw_server(env={"API_KEY": "detail-secret-1", "LEVEL": "debug"})})
    r = await client.get("/api/mcp_servers/a")
    assert r.json()["spec"]["env"] == {"API_KEY": "***", "LEVEL": "debug"} and "detail-secret-1" not in r.text


async def test_the_auth_settings_section_round_trips_and_a_remote_servers_auth_is_masked(
        file_hangar: Any, tmp_path: Path, api_factory: Any) -> None:
    auth = {"enabled": False, "allow_anonymous": True, "api_key": {"header_name": "X-Hangar-Key"},
            "role_assignments": [{"principal": "user:ops", "role": "operator"}],
            "rate_limit": {"tool_calls": {"rps": 7.0, "burst": 9}}}
    hangar, client, _ = await file_hangar({"mcp_servers": {"a": raw_server()}, "auth": auth, **NO_WATCH})
    exported = (await client.post("/api/config/export")).json()
    assert exported["redacted"] == []
    fresh, _, _ = await file_hangar(exported["yaml"], data_dir=tmp_path / "fresh")
    assert document_of_state(fresh) == document_of_state(hangar)
    assert document_of_state(fresh)["auth"]["role_assignments"][0]["role"] == "operator"
    _, rest = await api_factory({"r": {"mode": "remote", "endpoint": "http://127.0.0.1:9/mcp",
                                       "auth": {"type": "bearer", "bearer_token": "remote-tok-1"}}})
    detail = (await rest.get("/api/mcp_servers/r")).json()
    assert detail["spec"]["auth"] == {"type": "bearer", "bearer_token": "***"}
    view = (await rest.get("/api/config")).json()["config"]
    assert view["mcp_servers"]["r"]["auth"] == {"type": "bearer", "bearer_token": "***"}
