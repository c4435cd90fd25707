"""Hot reload: REST, the MCP tool and the file watcher apply the file atomically, server by server, and an
invalid file changes nothing. Real fixture servers over real pipes; PIDs prove who was restarted."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from config_helpers import NO_WATCH, Recorder, alive, file_hangar, pids, wait_for, write_config

from conftest import raw_server
from mcp_hangar.config_events import ConfigurationReloaded, ConfigurationReloadFailed
from mcp_hangar.front.management import Management

__all__ = ["file_hangar"]  # the fixture


def _fleet(n: int, **extra: Any) -> dict[str, Any]:
    return {f"s{i:02d}": raw_server(env={"GEN": "1"}) for i in range(n)} | extra


async def test_reload_with_twenty_running_servers_restarts_exactly_the_changed_one(file_hangar: Any) -> None:
    servers = _fleet(20)
    hangar, client, path = await file_hangar({"mcp_servers": servers, **NO_WATCH})
    for sid in servers:
        assert (await client.post(f"/api/mcp_servers/{sid}/start")).status_code == 200
    before = pids(hangar)
    assert all(before.values())
    events = Recorder(hangar)
    servers["s07"] = raw_server(env={"GEN": "2"})  # launch-relevant: restarted
    servers["s03"] = {**servers["s03"], "description": "now described", "idle_ttl_s": 900}  # in place
    removed = servers.pop("s19")
    servers["s20"] = raw_server()
    write_config(path, {"mcp_servers": servers, **NO_WATCH})

    r = await client.post("/api/config/reload")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "reloaded"
    result = body["result"]
    assert result["success"] is True and result["config_path"] == str(path)
    assert result["mcp_servers_added"] == ["s20"]
    assert result["mcp_servers_removed"] == ["s19"]
    assert result["mcp_servers_updated"] == ["s03", "s07"]
    assert result["mcp_servers_restarted"] == ["s07"]
    assert sorted(result["mcp_servers_unchanged"]) == sorted(set(servers) - {"s03", "s07", "s20"})
    assert isinstance(result["duration_ms"], float)

    after = pids(hangar)
    changed = {sid for sid in before if sid in after and after[sid] != before[sid]}
    assert changed == {"s07"}
    assert after["s07"] is not None and alive(after["s07"]) and not alive(before["s07"])
    assert "s19" not in hangar.servers and not alive(before["s19"])
    assert hangar.servers["s20"].pid is None and hangar.servers["s20"].state.value == "cold"
    assert hangar.servers["s03"].spec.description == "now described"
    assert hangar.servers["s07"].spec.env == {"GEN": "2"}
    assert removed  # it was a real entry
    reloaded = events.of("ConfigurationReloaded")
    assert len(reloaded) == 1 and isinstance(reloaded[0], ConfigurationReloaded)
    assert reloaded[0].mcp_servers_restarted == ["s07"] and reloaded[0].trigger == "api"
    assert next(e.event_type for e in events.events) == "ConfigurationReloadRequested"


def _bad_files(servers: dict[str, Any], extra: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(name, file text, expected line, expected key) for each kind of invalid file."""
    good = yaml.safe_dump({"mcp_servers": servers, **extra}, sort_keys=False)
    lines = good.splitlines()
    first = lines.index("  s00:")
    unknown = [*lines[: first + 1], "    comand: [python]", *lines[first + 1:]]
    bad_type = good.replace("idle_ttl_s: 300", "idle_ttl_s: soon", 1)
    dup = [*lines, "  s01:", "    mode: subprocess", "    command: [x]"]
    dup_line = len(lines) + 1
    return [
        ("bad_yaml", good + "  - [unclosed\n", "", ""),
        ("unknown_key", "\n".join(unknown) + "\n", f":{first + 2}:", "mcp_servers.s00.comand"),
        ("bad_type", bad_type, f":{bad_type.splitlines().index('    idle_ttl_s: soon') + 1}:",
         "mcp_servers.s00.idle_ttl_s"),
        ("duplicate_id", "\n".join(dup) + "\n", f":{dup_line}:", "'s01'"),
    ]


@pytest.mark.parametrize("kind", ["bad_yaml", "unknown_key", "bad_type", "duplicate_id"])
async def test_an_invalid_file_keeps_the_running_state_and_names_line_and_key(file_hangar: Any, kind: str) -> None:
    servers = {f"s{i:02d}": raw_server(idle_ttl_s=300) for i in range(3)}
    hangar, client, path = await file_hangar({"mcp_servers": servers, **NO_WATCH})
    for sid in servers:
        await client.post(f"/api/mcp_servers/{sid}/start")
    before = pids(hangar)
    events = Recorder(hangar)
    _, text, line, key = next(b for b in _bad_files(servers, NO_WATCH) if b[0] == kind)
    write_config(path, text)

    r = await client.post("/api/config/reload")
    assert r.status_code == 422, r.text
    body = r.json()
    assert set(body) == {"error", "message", "status_code"}
    assert body["error"] == "ConfigSyntaxError" if kind == "bad_yaml" else "ConfigError"
    assert body["status_code"] == 422
    assert str(path) in body["message"]
    if kind == "bad_yaml":
        assert "not valid YAML" in body["message"] and f"{path}:" in body["message"]
    else:
        assert f"{path}{line}" in body["message"] and key in body["message"], body["message"]
    assert pids(hangar) == before and all(alive(p) for p in before.values())
    assert set(hangar.servers) == set(servers)
    failed = events.of("ConfigurationReloadFailed")
    assert len(failed) == 1 and isinstance(failed[0], ConfigurationReloadFailed)
    assert failed[0].config_path == str(path) and failed[0].problems and failed[0].trigger == "api"
    assert not events.of("ConfigurationReloaded")


async def test_the_watcher_applies_a_saved_change_and_an_editor_rename(file_hangar: Any) -> None:
    servers = {"a": raw_server(), "b": raw_server()}
    hangar, client, path = await file_hangar({"mcp_servers": servers})
    await client.post("/api/mcp_servers/a/start")
    pid_a = hangar.servers["a"].pid
    events = Recorder(hangar)
    write_config(path, {"mcp_servers": {**servers, "c": raw_server()}})  # rename over the old file
    await wait_for(lambda: "c" in hangar.servers, "the watcher to add c")
    path.write_text(yaml.safe_dump({"mcp_servers": {"a": servers["a"], "c": raw_server()}}), "utf-8")  # in place
    await wait_for(lambda: "b" not in hangar.servers, "the watcher to remove b")
    assert hangar.servers["a"].pid == pid_a
    assert {e.trigger for e in events.of("ConfigurationReloaded")} == {"watcher"}  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", ["bad_yaml", "unknown_key", "bad_type", "duplicate_id", "id_clash"])
async def test_the_watcher_refuses_an_invalid_file_keeps_pids_and_publishes_the_failure(file_hangar: Any,
                                                                                       kind: str) -> None:
    servers = {f"s{i:02d}": raw_server(idle_ttl_s=300) for i in range(3)}
    hangar, client, path = await file_hangar({"mcp_servers": servers})
    await client.post("/api/mcp_servers/s00/start")
    before = pids(hangar)
    events = Recorder(hangar)
    if kind == "id_clash":  # a server and a group with one id
        text, line, key = yaml.safe_dump({"mcp_servers": servers, "groups": {"s01": {"members": ["s00"]}}}), "", \
            "groups.s01"
    else:
        _, text, line, key = next(b for b in _bad_files(servers, {}) if b[0] == kind)
    write_config(path, text)
    await wait_for(lambda: bool(events.of("ConfigurationReloadFailed")), "the refusal event")
    failed = events.of("ConfigurationReloadFailed")[0]
    assert failed.trigger == "watcher"  # type: ignore[attr-defined]
    problems = " ".join(failed.problems)  # type: ignore[attr-defined]
    assert f"{path}{line}" in problems and key in problems, problems
    assert pids(hangar) == before and set(hangar.servers) == set(servers) and not hangar.groups.groups
    write_config(path, {"mcp_servers": {"s00": servers["s00"]}})  # fixed: applied
    await wait_for(lambda: "s01" not in hangar.servers, "the fixed file to be applied")
    assert hangar.servers["s00"].pid == before["s00"]


async def test_the_watcher_follows_a_symlink_swap_like_a_kubernetes_config_map(tmp_path: Path) -> None:
    folder = tmp_path / "configmap"
    (folder / "..v1").mkdir(parents=True)
    (folder / "..v1" / "config.yaml").write_text(yaml.safe_dump({"mcp_servers": {"a": raw_server()}}))
    (folder / "..data").symlink_to("..v1")
    (folder / "config.yaml").symlink_to("..data/config.yaml")
    linked = await file_hangar_on(folder / "config.yaml", tmp_path)
    try:
        (folder / "..v2").mkdir()
        (folder / "..v2" / "config.yaml").write_text(yaml.safe_dump({"mcp_servers": {"a": raw_server(),
                                                                                     "b": raw_server()}}))
        (folder / "..data_tmp").symlink_to("..v2")
        os.replace(folder / "..data_tmp", folder / "..data")  # the atomic swap
        await wait_for(lambda: "b" in linked.servers, "the watcher to see the swapped link")
        assert linked.servers["b"].source == "config"
    finally:
        await linked.aclose()


async def test_without_file_events_the_file_is_polled(file_hangar: Any) -> None:
    doc: dict[str, Any] = {"mcp_servers": {}, "config_reload": {"use_watchdog": False, "interval_s": 0.05}}
    hangar, _, path = await file_hangar(doc)
    write_config(path, {**doc, "mcp_servers": {"a": raw_server()}})
    await wait_for(lambda: "a" in hangar.servers, "the poll to see the change")


async def file_hangar_on(path: Path, tmp_path: Path) -> Any:
    from mcp_hangar.config import load_config
    from mcp_hangar.hangar import Hangar

    hangar = Hangar(load_config(path), tmp_path / "linked-data")
    await hangar.start()
    return hangar


async def test_the_mcp_tool_reloads_through_the_same_path(file_hangar: Any) -> None:
    hangar, _, path = await file_hangar({"mcp_servers": {"a": raw_server()}, **NO_WATCH})
    write_config(path, {"mcp_servers": {"a": raw_server(), "b": raw_server()}, **NO_WATCH})
    result = await Management(hangar).call("hangar_reload_config", {"graceful": True})
    assert result["isError"] is False
    assert result["structuredContent"]["status"] == "reloaded"
    assert result["structuredContent"]["result"]["mcp_servers_added"] == ["b"]
    assert result["structuredContent"]["result"]["trigger"] == "mcp_tool"
    write_config(path, "mcp_servers: [oops\n")
    refused = await Management(hangar).call("hangar_reload_config", {})
    assert refused["isError"] is True and refused["structuredContent"]["error"] == "ConfigSyntaxError"
    assert set(hangar.servers) == {"a", "b"}


async def test_reload_reconciles_groups_and_takes_over_rest_created_ids(file_hangar: Any) -> None:
    doc: dict[str, Any] = {"mcp_servers": {"a": raw_server(), "b": raw_server()},
                           "groups": {"pool": {"members": ["a"], "auto_start": False},
                                      "gone": {"members": ["b"], "auto_start": False}}, **NO_WATCH}
    hangar, client, path = await file_hangar(doc)
    r = await client.post("/api/mcp_servers", json={"mcp_server_id": "rest1", **raw_server()})
    assert r.status_code == 201, r.text
    doc["mcp_servers"]["rest1"] = raw_server(description="declared now")
    doc["groups"]["pool"] = {"members": ["a", {"member_id": "b", "weight": 3}], "strategy": "weighted_round_robin",
                             "auto_start": False}
    del doc["groups"]["gone"]
    doc["groups"]["fresh"] = {"members": ["rest1"], "auto_start": False}
    write_config(path, doc)
    result = (await client.post("/api/config/reload")).json()["result"]
    assert result["groups_added"] == ["fresh"] and result["groups_removed"] == ["gone"]
    assert result["groups_updated"] == ["pool"]
    assert "rest1" in result["mcp_servers_updated"] and "rest1" not in result["mcp_servers_restarted"]
    pool = hangar.groups.get("pool")
    assert [(m.member_id, m.weight) for m in pool.members] == [("a", 1), ("b", 3)]
    assert pool.spec.strategy == "weighted_round_robin"
    assert "gone" not in hangar.groups.groups
    assert hangar.servers["rest1"].source == "config"
    assert "rest1" not in await hangar.store.load_servers()  # the file owns it now
    again = (await client.post("/api/config/reload")).json()["result"]
    assert again["groups_unchanged"] == ["fresh", "pool"] and not again["mcp_servers_updated"]


async def test_reload_adds_changes_and_removes_discovery_sources(file_hangar: Any, tmp_path: Any) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    doc: dict[str, Any] = {"mcp_servers": {}, **NO_WATCH}
    hangar, client, path = await file_hangar(doc)
    assert hangar.discovery is None
    source = {"id": "dir", "type": "filesystem", "config": {"path": str(one)}}
    doc["discovery"] = {"enabled": False, "sources": [source]}
    write_config(path, doc)
    result = (await client.post("/api/config/reload")).json()["result"]
    assert result["discovery_sources_added"] == ["dir"] and hangar.discovery is not None
    assert (await client.get("/api/discovery/sources")).status_code == 200
    doc["discovery"]["sources"][0]["config"]["path"] = str(two)
    write_config(path, doc)
    result = (await client.post("/api/config/reload")).json()["result"]
    assert result["discovery_sources_updated"] == ["dir"]
    assert hangar.discovery.sources["dir"].spec.config["path"] == str(two)
    doc["discovery"]["sources"] = []
    write_config(path, doc)
    result = (await client.post("/api/config/reload")).json()["result"]
    assert result["discovery_sources_removed"] == ["dir"] and not hangar.discovery.sources


async def test_reload_without_a_file_is_a_clear_422(api_factory: Any) -> None:
    _, client = await api_factory({"a": raw_server()})
    r = await client.post("/api/config/reload")
    assert r.status_code == 422 and r.json()["error"] == "ValidationError"
    assert (await client.post("/api/config/reload", json={"config_path": "/etc/passwd"})).status_code == 422


def test_fixture_servers_exist() -> None:
    assert os.path.exists(raw_server()["command"][1])


async def test_no_reload_once_hangar_is_shutting_down(file_hangar: Any) -> None:
    from mcp_hangar.errors import ConflictError

    hangar, _, path = await file_hangar({"mcp_servers": {"a": raw_server()}, **NO_WATCH})
    write_config(path, {"mcp_servers": {"a": raw_server(), "b": raw_server()}, **NO_WATCH})
    await hangar.aclose()
    with pytest.raises(ConflictError):
        await hangar.reloader.reload("sighup")
    assert set(hangar.servers) == {"a"}
