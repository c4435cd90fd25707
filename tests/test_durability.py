"""What survives a restart on the same data directory, and what the config file decides instead.

Servers created through REST are saved (source "api"); config-declared servers are the file's, so REST changes
to them last until the next start. The invocation history is durable.
"""

from __future__ import annotations

from pathlib import Path

from conftest import raw_server
from mcp_hangar.hangar import Hangar


async def _restart(api_factory, hangar: Hangar, servers: dict, data_dir: Path):
    await hangar.aclose()
    return await api_factory(servers, data_dir=data_dir)


async def test_a_server_created_through_rest_survives_a_restart_as_source_api(api_factory, tmp_path) -> None:
    data = tmp_path / "d"
    hangar, client = await api_factory({}, data_dir=data)
    r = await client.post("/api/mcp_servers", json={"mcp_server_id": "made", **raw_server(idle_ttl_s=42,
                                                                                         description="kept")})
    assert r.status_code == 201
    hangar, client = await _restart(api_factory, hangar, {}, data)
    body = (await client.get("/api/mcp_servers/made")).json()
    assert body["source"] == "api" and body["state"] == "cold"
    assert body["description"] == "kept" and body["spec"]["idle_ttl_s"] == 42
    assert (await client.post("/api/mcp_servers/made/start")).json()["state"] == "ready"


async def test_an_update_of_an_api_server_is_persisted(api_factory, tmp_path) -> None:
    data = tmp_path / "d"
    hangar, client = await api_factory({}, data_dir=data)
    await client.post("/api/mcp_servers", json={"mcp_server_id": "made", **raw_server()})
    r = await client.put("/api/mcp_servers/made", json={"description": "updated", "idle_ttl_s": 99})
    assert r.json()["persisted"] is True
    hangar, client = await _restart(api_factory, hangar, {}, data)
    spec = hangar.get("made").spec
    assert spec.description == "updated" and spec.idle_ttl_s == 99


async def test_a_deleted_api_server_stays_deleted_after_a_restart(api_factory, tmp_path) -> None:
    data = tmp_path / "d"
    hangar, client = await api_factory({}, data_dir=data)
    await client.post("/api/mcp_servers", json={"mcp_server_id": "made", **raw_server()})
    assert (await client.delete("/api/mcp_servers/made")).status_code == 200
    hangar, client = await _restart(api_factory, hangar, {}, data)
    assert (await client.get("/api/mcp_servers/made")).status_code == 404


async def test_an_update_of_a_config_server_is_not_persisted(api_factory, tmp_path) -> None:
    data = tmp_path / "d"
    config = {"declared": raw_server(description="from the file")}
    hangar, client = await api_factory(config, data_dir=data)
    r = await client.put("/api/mcp_servers/declared", json={"description": "from REST"})
    assert r.json()["persisted"] is False
    assert hangar.get("declared").spec.description == "from REST"
    hangar, client = await _restart(api_factory, hangar, config, data)
    body = (await client.get("/api/mcp_servers/declared")).json()
    assert body["description"] == "from the file" and body["source"] == "config"


async def test_a_config_server_deleted_through_rest_comes_back_from_the_file(api_factory, tmp_path) -> None:
    data = tmp_path / "d"
    config = {"declared": raw_server()}
    hangar, client = await api_factory(config, data_dir=data)
    assert (await client.delete("/api/mcp_servers/declared")).status_code == 200
    hangar, client = await _restart(api_factory, hangar, config, data)
    assert (await client.get("/api/mcp_servers/declared")).json()["source"] == "config"


async def test_the_config_file_wins_over_a_saved_server_with_the_same_id(api_factory, tmp_path) -> None:
    data = tmp_path / "d"
    hangar, client = await api_factory({}, data_dir=data)
    await client.post("/api/mcp_servers", json={"mcp_server_id": "both", **raw_server(description="saved")})
    hangar, client = await _restart(api_factory, hangar, {"both": raw_server(description="declared")}, data)
    body = (await client.get("/api/mcp_servers/both")).json()
    assert body["source"] == "config" and body["description"] == "declared"


async def test_the_invocation_history_survives_a_restart(api_factory, tmp_path) -> None:
    data = tmp_path / "d"
    config = {"s": raw_server()}
    hangar, client = await api_factory(config, data_dir=data)
    for text in ("one", "two", "three"):
        await hangar.call_tool("s", "echo", {"text": text})
    await hangar.call_tool("s", "fail", {})
    before = (await client.get("/api/mcp_servers/s/tools/history")).json()
    hangar, client = await _restart(api_factory, hangar, config, data)
    after = (await client.get("/api/mcp_servers/s/tools/history")).json()
    assert after["total"] == before["total"] == 4
    assert after["history"] == before["history"]
    assert [h["outcome"] for h in after["history"]] == ["error", "success", "success", "success"]


async def test_invocations_made_just_before_shutdown_are_not_lost(api_factory, tmp_path) -> None:
    data = tmp_path / "d"
    config = {"s": raw_server()}
    hangar, _ = await api_factory(config, data_dir=data)
    for i in range(20):
        await hangar.call_tool("s", "add", {"a": i, "b": 1})
    hangar, client = await _restart(api_factory, hangar, config, data)  # no read flushed the writer before
    body = (await client.get("/api/mcp_servers/s/tools/history", params={"tool": "add"})).json()
    assert body["total"] == 20


async def test_history_is_kept_per_server_across_restarts(api_factory, tmp_path) -> None:
    data = tmp_path / "d"
    hangar, client = await api_factory({}, data_dir=data)
    await client.post("/api/mcp_servers", json={"mcp_server_id": "made", **raw_server()})
    await hangar.call_tool("made", "echo", {"text": "x"})
    hangar, client = await _restart(api_factory, hangar, {"other": raw_server()}, data)
    made = (await client.get("/api/mcp_servers/made/tools/history")).json()
    other = (await client.get("/api/mcp_servers/other/tools/history")).json()
    assert made["total"] == 1 and other["total"] == 0


async def test_the_live_tool_list_is_remembered_across_a_restart(api_factory, tmp_path) -> None:
    data = tmp_path / "d"
    config = {"s": raw_server()}
    hangar, client = await api_factory(config, data_dir=data)
    started = (await client.post("/api/mcp_servers/s/start")).json()
    await client.post("/api/mcp_servers/s/stop")
    hangar, client = await _restart(api_factory, hangar, config, data)
    body = (await client.get("/api/mcp_servers/s/tools")).json()
    assert body["tools_origin"] == "remembered"
    assert [t["name"] for t in body["tools"]] == started["tools"]


async def test_the_state_lives_in_the_data_directory(api_factory, tmp_path) -> None:
    data = tmp_path / "d"
    hangar, client = await api_factory({}, data_dir=data)
    await client.post("/api/mcp_servers", json={"mcp_server_id": "made", **raw_server()})
    assert (data / "hangar.db").is_file()
    _, client = await _restart(api_factory, hangar, {}, tmp_path / "elsewhere")
    assert (await client.get("/api/mcp_servers")).json()["total"] == 0
