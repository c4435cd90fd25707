"""The REST contract for /api/mcp_servers, /api/system and the health probes, in process through the ASGI app.

One behaviour per test; every server started here is stopped by the fixture that closes its Hangar.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from conftest import PYTHON, RAW_SERVER, loaded_config, raw_server
from fixtures.raw_server import TOOL_DEFS
from mcp_hangar import __version__
from mcp_hangar.events import Event, McpServerEvent, McpServerStarted, McpServerStopped
from mcp_hangar.hangar import Hangar
from mcp_hangar.web.app import create_app

RAW_TOOLS = [name for name, *_ in TOOL_DEFS]
ENVELOPE_KEYS = {"error", "message", "status_code"}


def of(kind: type[Event], server_id: str, **fields: Any) -> Callable[[Event], bool]:
    def match(event: Event) -> bool:
        return (isinstance(event, kind) and isinstance(event, McpServerEvent) and event.mcp_server_id == server_id
                and all(getattr(event, k) == v for k, v in fields.items()))

    return match


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def until(condition: Callable[[], Any], timeout: float, what: str) -> None:
    """Poll a fact no event reports (a log line arriving on a pipe), with a deadline."""
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def assert_envelope(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == ENVELOPE_KEYS
    assert body["error"] == error
    assert body["status_code"] == status
    assert body["message"]
    return body


# ---------------------------------------------------------------------------------------------- list


async def test_list_returns_every_server_sorted_with_its_summary(api_factory) -> None:
    _, client = await api_factory({"b": raw_server(description="second"), "a": raw_server()})
    r = await client.get("/api/mcp_servers")
    assert r.status_code == 200
    body = r.json()
    assert body["total"] == 2
    assert [s["mcp_server_id"] for s in body["mcp_servers"]] == ["a", "b"]
    b = body["mcp_servers"][1]
    assert b["state"] == "cold" and b["source"] == "config" and b["description"] == "second"
    assert b["mode"] == "subprocess" and b["alive"] is False and b["pid"] is None


async def test_list_filters_by_state(api_factory) -> None:
    _, client = await api_factory({"up": raw_server(), "down": raw_server()})
    assert (await client.post("/api/mcp_servers/up/start")).status_code == 200
    ready = (await client.get("/api/mcp_servers", params={"state": "ready"})).json()
    cold = (await client.get("/api/mcp_servers", params={"state": "cold"})).json()
    assert [s["mcp_server_id"] for s in ready["mcp_servers"]] == ["up"] and ready["total"] == 1
    assert [s["mcp_server_id"] for s in cold["mcp_servers"]] == ["down"] and cold["total"] == 1


async def test_list_with_an_invalid_state_is_a_422_envelope(api_factory) -> None:
    _, client = await api_factory({"a": raw_server()})
    body = assert_envelope(await client.get("/api/mcp_servers?state=sleepy"), 422, "ValidationError")
    assert "state" in body["message"]


# -------------------------------------------------------------------------------------------- create


async def test_create_returns_201_and_registers_an_api_server(api_factory) -> None:
    hangar, client = await api_factory({})
    r = await client.post("/api/mcp_servers", json={"mcp_server_id": "made", **raw_server(description="d")})
    assert r.status_code == 201
    assert r.json() == {"mcp_server_id": "made", "created": True}
    got = (await client.get("/api/mcp_servers/made")).json()
    assert got["source"] == "api" and got["state"] == "cold" and got["description"] == "d"
    assert hangar.get("made").source == "api"


async def test_create_a_duplicate_id_is_a_409_conflict(api_factory) -> None:
    _, client = await api_factory({"taken": raw_server()})
    r = await client.post("/api/mcp_servers", json={"mcp_server_id": "taken", **raw_server()})
    body = assert_envelope(r, 409, "ConflictError")
    assert "taken" in body["message"]


async def test_concurrent_creates_of_one_id_give_one_201_and_one_409(api_factory) -> None:
    hangar, client = await api_factory({})
    payload = {"mcp_server_id": "twin", **raw_server()}
    first, second = await asyncio.gather(client.post("/api/mcp_servers", json=payload),
                                         client.post("/api/mcp_servers", json=payload))
    assert sorted([first.status_code, second.status_code]) == [201, 409]
    assert list(hangar.servers) == ["twin"]


async def test_create_with_an_invalid_id_is_a_422(api_factory) -> None:
    hangar, client = await api_factory({})
    r = await client.post("/api/mcp_servers", json={"mcp_server_id": "bad id!", **raw_server()})
    body = assert_envelope(r, 422, "ValidationError")
    assert "mcp_server_id" in body["message"]
    assert hangar.servers == {}


async def test_create_a_subprocess_server_without_command_is_a_422(api_factory) -> None:
    _, client = await api_factory({})
    r = await client.post("/api/mcp_servers", json={"mcp_server_id": "x", "mode": "subprocess"})
    body = assert_envelope(r, 422, "ValidationError")
    assert "command" in body["message"]


async def test_create_with_an_unknown_field_is_a_422(api_factory) -> None:
    _, client = await api_factory({})
    r = await client.post("/api/mcp_servers", json={"mcp_server_id": "x", **raw_server(), "colour": "blue"})
    body = assert_envelope(r, 422, "ValidationError")
    assert "colour" in body["message"]


async def test_create_splits_a_command_given_as_one_string(api_factory) -> None:
    hangar, client = await api_factory({})
    r = await client.post("/api/mcp_servers", json={"mcp_server_id": "s", "command": f"{PYTHON} {RAW_SERVER}"})
    assert r.status_code == 201
    assert hangar.get("s").spec.command == [PYTHON, str(RAW_SERVER)]


async def test_create_with_auto_start_starts_the_server(api_factory) -> None:
    hangar, client = await api_factory({})
    with hangar.bus.subscription() as sub:
        r = await client.post("/api/mcp_servers", json={"mcp_server_id": "eager", **raw_server(auto_start=True)})
        assert r.status_code == 201
        await sub.wait_for(of(McpServerStarted, "eager"), timeout=10)
    assert (await client.get("/api/mcp_servers/eager")).json()["state"] == "ready"


# ----------------------------------------------------------------------------------------------- get


async def test_get_returns_spec_health_and_runtime_details(api_factory) -> None:
    _, client = await api_factory({"s": raw_server(idle_ttl_s=120)})
    await client.post("/api/mcp_servers/s/start")
    body = (await client.get("/api/mcp_servers/s")).json()
    assert body["mcp_server_id"] == "s" and body["state"] == "ready" and body["alive"] is True
    assert body["spec"]["idle_ttl_s"] == 120 and body["spec"]["command"] == [PYTHON, str(RAW_SERVER)]
    assert body["health"]["status"] == "healthy"
    assert body["server_info"]["name"] == "raw-fixture"
    assert running(body["pid"])
    assert [t["name"] for t in body["tools"]] == RAW_TOOLS


async def test_get_an_unknown_server_is_a_404(api_factory) -> None:
    _, client = await api_factory({})
    body = assert_envelope(await client.get("/api/mcp_servers/ghost"), 404, "McpServerNotFoundError")
    assert body["message"] == "MCP Server 'ghost' not found"


# -------------------------------------------------------------------------------------------- update


async def test_update_merges_the_given_fields_into_the_spec(api_factory) -> None:
    hangar, client = await api_factory({"s": raw_server(idle_ttl_s=120, description="old")})
    r = await client.put("/api/mcp_servers/s", json={"description": "new"})
    assert r.status_code == 200
    assert r.json()["changed_fields"] == ["description"]
    spec = hangar.get("s").spec
    assert spec.description == "new" and spec.idle_ttl_s == 120 and spec.command == [PYTHON, str(RAW_SERVER)]


async def test_update_of_a_launch_field_restarts_a_running_server_with_a_new_pid(api_factory) -> None:
    hangar, client = await api_factory({"s": raw_server()})
    await client.post("/api/mcp_servers/s/start")
    old_pid = (await client.get("/api/mcp_servers/s")).json()["pid"]
    with hangar.bus.subscription() as sub:
        r = await client.put("/api/mcp_servers/s", json={"env": {"MARKER": "2"}})
        assert r.status_code == 200
        assert r.json()["restarted"] is True and r.json()["state"] == "ready"
        await sub.wait_for(of(McpServerStopped, "s", reason="config_changed"), timeout=1)
    new_pid = (await client.get("/api/mcp_servers/s")).json()["pid"]
    assert new_pid != old_pid and running(new_pid) and not running(old_pid)
    result = await hangar.call_tool("s", "env", {"name": "MARKER"})
    assert result["content"][0]["text"] == "2"


async def test_update_of_the_description_keeps_a_running_server_and_its_pid(api_factory) -> None:
    _, client = await api_factory({"s": raw_server()})
    await client.post("/api/mcp_servers/s/start")
    old_pid = (await client.get("/api/mcp_servers/s")).json()["pid"]
    r = await client.put("/api/mcp_servers/s", json={"description": "renamed"})
    assert r.json()["restarted"] is False
    detail = (await client.get("/api/mcp_servers/s")).json()
    assert detail["pid"] == old_pid and detail["description"] == "renamed" and detail["state"] == "ready"


async def test_update_of_a_cold_server_does_not_start_it(api_factory) -> None:
    _, client = await api_factory({"s": raw_server()})
    r = await client.put("/api/mcp_servers/s", json={"args": ["--tools-prefix", "p_"]})
    assert r.json()["restarted"] is False and r.json()["state"] == "cold"


async def test_update_whose_restart_fails_still_applies_and_reports_the_dead_state(api_factory) -> None:
    hangar, client = await api_factory({"s": raw_server()})
    await client.post("/api/mcp_servers/s/start")
    r = await client.put("/api/mcp_servers/s", json={"args": ["--exit-on-initialize"]})
    assert r.status_code == 200
    assert r.json()["restarted"] is True and r.json()["state"] == "dead"
    assert hangar.get("s").spec.args == ["--exit-on-initialize"]


async def test_update_with_null_resets_a_field_to_its_default(api_factory) -> None:
    hangar, client = await api_factory({"s": raw_server(idle_ttl_s=120)})
    r = await client.put("/api/mcp_servers/s", json={"idle_ttl_s": None})
    assert r.status_code == 200
    assert hangar.get("s").spec.idle_ttl_s == 300


async def test_update_with_an_invalid_value_is_a_422_and_changes_nothing(api_factory) -> None:
    hangar, client = await api_factory({"s": raw_server(idle_ttl_s=120)})
    assert_envelope(await client.put("/api/mcp_servers/s", json={"idle_ttl_s": -5}), 422, "ValidationError")
    assert_envelope(await client.put("/api/mcp_servers/s", json={"mode": "docker"}), 422, "ValidationError")
    assert hangar.get("s").spec.idle_ttl_s == 120 and hangar.get("s").spec.mode == "subprocess"


async def test_update_with_an_unknown_field_is_a_422(api_factory) -> None:
    _, client = await api_factory({"s": raw_server()})
    body = assert_envelope(await client.put("/api/mcp_servers/s", json={"colour": "red"}), 422, "ValidationError")
    assert "colour" in body["message"]


async def test_update_an_unknown_server_is_a_404(api_factory) -> None:
    _, client = await api_factory({})
    assert_envelope(await client.put("/api/mcp_servers/ghost", json={"description": "x"}), 404,
                    "McpServerNotFoundError")


# -------------------------------------------------------------------------------------------- delete


async def test_delete_stops_a_running_server_first_then_it_is_gone(api_factory) -> None:
    hangar, client = await api_factory({"s": raw_server()})
    await client.post("/api/mcp_servers/s/start")
    pid = (await client.get("/api/mcp_servers/s")).json()["pid"]
    with hangar.bus.subscription() as sub:
        r = await client.delete("/api/mcp_servers/s")
        assert r.status_code == 200 and r.json() == {"mcp_server_id": "s", "deleted": True}
        await sub.wait_for(of(McpServerStopped, "s", reason="deleted"), timeout=1)
    assert not running(pid)
    assert_envelope(await client.get("/api/mcp_servers/s"), 404, "McpServerNotFoundError")
    assert (await client.get("/api/mcp_servers")).json()["total"] == 0


async def test_delete_an_unknown_server_is_a_404(api_factory) -> None:
    _, client = await api_factory({})
    assert_envelope(await client.delete("/api/mcp_servers/ghost"), 404, "McpServerNotFoundError")


# -------------------------------------------------------------------------------------- start / stop


async def test_start_returns_when_ready_with_the_tool_names(api_factory) -> None:
    _, client = await api_factory({"s": raw_server()})
    r = await client.post("/api/mcp_servers/s/start")
    assert r.status_code == 200
    assert r.json() == {"mcp_server": "s", "state": "ready", "tools": RAW_TOOLS}


async def test_start_of_a_server_that_cannot_start_is_a_502_and_it_is_dead(api_factory) -> None:
    _, client = await api_factory({"s": raw_server("--exit-on-initialize")})
    assert_envelope(await client.post("/api/mcp_servers/s/start"), 502, "McpServerStartError")
    detail = (await client.get("/api/mcp_servers/s")).json()
    assert detail["state"] == "dead" and detail["dead"]["reason"] == "start_failed"


async def test_start_an_unknown_server_is_a_404(api_factory) -> None:
    _, client = await api_factory({})
    assert_envelope(await client.post("/api/mcp_servers/ghost/start"), 404, "McpServerNotFoundError")


async def test_stop_ends_the_process_and_leaves_the_server_cold(api_factory) -> None:
    _, client = await api_factory({"s": raw_server()})
    await client.post("/api/mcp_servers/s/start")
    pid = (await client.get("/api/mcp_servers/s")).json()["pid"]
    r = await client.post("/api/mcp_servers/s/stop")
    assert r.status_code == 200
    assert r.json() == {"stopped": "s", "was_running": True, "reason": "user_request", "state": "cold"}
    assert not running(pid)


async def test_stop_passes_the_given_reason_on(api_factory) -> None:
    hangar, client = await api_factory({"s": raw_server()})
    await client.post("/api/mcp_servers/s/start")
    with hangar.bus.subscription() as sub:
        r = await client.post("/api/mcp_servers/s/stop", json={"reason": "maintenance"})
        assert r.json()["reason"] == "maintenance"
        await sub.wait_for(of(McpServerStopped, "s", reason="maintenance"), timeout=1)


async def test_stop_of_a_cold_server_reports_it_was_not_running(api_factory) -> None:
    _, client = await api_factory({"s": raw_server()})
    r = await client.post("/api/mcp_servers/s/stop")
    assert r.status_code == 200 and r.json()["was_running"] is False and r.json()["state"] == "cold"


async def test_stop_an_unknown_server_is_a_404(api_factory) -> None:
    _, client = await api_factory({})
    assert_envelope(await client.post("/api/mcp_servers/ghost/stop"), 404, "McpServerNotFoundError")


# -------------------------------------------------------------------------------------- tools, health


async def test_tools_lists_the_live_tools_with_their_schemas(api_factory) -> None:
    _, client = await api_factory({"s": raw_server()})
    await client.post("/api/mcp_servers/s/start")
    body = (await client.get("/api/mcp_servers/s/tools")).json()
    assert body["mcp_server_id"] == "s" and body["tools_origin"] == "live"
    add = next(t for t in body["tools"] if t["name"] == "add")
    assert add["inputSchema"]["required"] == ["a", "b"]
    assert add["outputSchema"]["properties"]["result"] == {"type": "number"}


async def test_tools_of_a_never_started_server_are_its_declared_tools(api_factory) -> None:
    declared = [{"name": "echo", "description": "Echo", "inputSchema": {"type": "object"}}]
    _, client = await api_factory({"s": raw_server(tools=declared)})
    body = (await client.get("/api/mcp_servers/s/tools")).json()
    assert body["tools_origin"] == "declared"
    assert [t["name"] for t in body["tools"]] == ["echo"]


async def test_tools_of_an_unknown_server_is_a_404(api_factory) -> None:
    _, client = await api_factory({})
    assert_envelope(await client.get("/api/mcp_servers/ghost/tools"), 404, "McpServerNotFoundError")


async def test_health_counts_invocations_and_failures(api_factory) -> None:
    hangar, client = await api_factory({"s": raw_server()})
    await hangar.call_tool("s", "add", {"a": 1, "b": 2})
    with pytest.raises(Exception, match="Unknown tool"):
        await hangar.call_tool("s", "no_such_tool", {})
    body = (await client.get("/api/mcp_servers/s/health")).json()
    assert body["mcp_server_id"] == "s" and body["state"] == "ready" and body["status"] == "healthy"
    assert body["total_invocations"] == 2 and body["total_failures"] == 1 and body["success_rate"] == 0.5
    assert body["last_success_ago"] is not None and body["last_failure_ago"] is not None


async def test_health_of_an_unknown_server_is_a_404(api_factory) -> None:
    _, client = await api_factory({})
    assert_envelope(await client.get("/api/mcp_servers/ghost/health"), 404, "McpServerNotFoundError")


# ---------------------------------------------------------------------------------------------- logs


async def test_logs_return_the_last_lines_newest_last(api_factory) -> None:
    hangar, client = await api_factory({"s": raw_server()})
    await hangar.call_tool("s", "stderr", {"lines": 20})

    async def arrived() -> bool:
        logs = (await client.get("/api/mcp_servers/s/logs")).json()["logs"]
        return any(entry["content"] == "log line 19" for entry in logs)

    await until(arrived, 5, "the stderr lines")
    body = (await client.get("/api/mcp_servers/s/logs", params={"lines": 5})).json()
    assert body["count"] == 5
    assert [entry["content"] for entry in body["logs"]] == [f"log line {i}" for i in range(15, 20)]
    stamps = [entry["recorded_at"] for entry in body["logs"]]
    assert stamps == sorted(stamps)
    assert all(entry["mcp_server_id"] == "s" and entry["stream"] == "stderr" for entry in body["logs"])


async def test_logs_default_to_the_last_hundred_lines(api_factory) -> None:
    hangar, client = await api_factory({"s": raw_server()})
    await hangar.call_tool("s", "stderr", {"lines": 150})

    async def arrived() -> bool:
        logs = (await client.get("/api/mcp_servers/s/logs?lines=1")).json()["logs"]
        return bool(logs) and logs[-1]["content"] == "log line 149"

    await until(arrived, 5, "the stderr lines")
    body = (await client.get("/api/mcp_servers/s/logs")).json()
    assert body["count"] == 100 and body["logs"][-1]["content"] == "log line 149"


@pytest.mark.parametrize("lines", ["0", "1001", "-3", "many"])
async def test_logs_with_lines_out_of_1_to_1000_is_a_422(api_factory, lines: str) -> None:
    _, client = await api_factory({"s": raw_server()})
    body = assert_envelope(await client.get(f"/api/mcp_servers/s/logs?lines={lines}"), 422, "ValidationError")
    assert "lines" in body["message"]


async def test_logs_of_an_unknown_server_is_a_404(api_factory) -> None:
    _, client = await api_factory({})
    assert_envelope(await client.get("/api/mcp_servers/ghost/logs"), 404, "McpServerNotFoundError")


# ------------------------------------------------------------------------------------------- history


async def _calls(hangar: Hangar, server_id: str, texts: list[str]) -> None:
    for text in texts:
        await hangar.call_tool(server_id, "echo", {"text": text})


async def test_history_lists_invocations_newest_first_with_the_real_total(api_factory) -> None:
    hangar, client = await api_factory({"s": raw_server()})
    await hangar.call_tool("s", "add", {"a": 1, "b": 2})
    await hangar.call_tool("s", "echo", {"text": "hi"})
    body = (await client.get("/api/mcp_servers/s/tools/history")).json()
    assert body["mcp_server_id"] == "s" and body["total"] == 2 and body["next_cursor"] is None
    assert [h["tool_name"] for h in body["history"]] == ["echo", "add"]
    assert all(h["outcome"] == "success" and h["duration_ms"] >= 0 for h in body["history"])


async def test_history_pages_with_limit_and_an_opaque_cursor(api_factory) -> None:
    hangar, client = await api_factory({"s": raw_server()})
    await _calls(hangar, "s", [f"t{i}" for i in range(5)])
    seen: list[str] = []
    sizes: list[int] = []
    cursor: str | None = None
    for _ in range(5):
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/mcp_servers/s/tools/history", params=params)).json()
        assert page["total"] == 5
        sizes.append(len(page["history"]))
        seen += [h["correlation_id"] for h in page["history"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sizes == [2, 2, 1]
    everything = (await client.get("/api/mcp_servers/s/tools/history")).json()["history"]
    assert seen == [h["correlation_id"] for h in everything]


async def test_history_has_no_next_cursor_when_the_last_page_is_exactly_full(api_factory) -> None:
    hangar, client = await api_factory({"s": raw_server()})
    await _calls(hangar, "s", ["a", "b", "c", "d"])
    first = (await client.get("/api/mcp_servers/s/tools/history", params={"limit": 2})).json()
    second = (await client.get("/api/mcp_servers/s/tools/history",
                               params={"limit": 2, "cursor": first["next_cursor"]})).json()
    assert len(second["history"]) == 2 and second["next_cursor"] is None


async def test_history_filters_by_tool(api_factory) -> None:
    hangar, client = await api_factory({"s": raw_server()})
    await _calls(hangar, "s", ["a", "b"])
    await hangar.call_tool("s", "add", {"a": 1, "b": 1})
    body = (await client.get("/api/mcp_servers/s/tools/history", params={"tool": "echo"})).json()
    assert body["total"] == 2 and {h["tool_name"] for h in body["history"]} == {"echo"}


async def test_history_filters_by_outcome(api_factory) -> None:
    hangar, client = await api_factory({"s": raw_server()})
    await hangar.call_tool("s", "echo", {"text": "fine"})
    await hangar.call_tool("s", "fail", {})  # a tool result with isError: outcome "error"
    with pytest.raises(Exception, match="Unknown tool"):
        await hangar.call_tool("s", "no_such_tool", {})  # a JSON-RPC error: outcome "failure"

    async def outcomes(outcome: str) -> list[str]:
        body = (await client.get("/api/mcp_servers/s/tools/history", params={"outcome": outcome})).json()
        assert body["total"] == len(body["history"])
        return [h["tool_name"] for h in body["history"]]

    assert await outcomes("success") == ["echo"]
    assert await outcomes("error") == ["fail"]
    assert await outcomes("failure") == ["no_such_tool"]


async def test_history_of_an_unknown_server_is_a_404(api_factory) -> None:
    _, client = await api_factory({})
    assert_envelope(await client.get("/api/mcp_servers/ghost/tools/history"), 404, "McpServerNotFoundError")


# -------------------------------------------------------------------------------------- system, probes


async def test_system_reports_uptime_version_counts_and_success_rate(api_factory) -> None:
    hangar, client = await api_factory({"a": raw_server(), "b": raw_server()})
    await client.post("/api/mcp_servers/a/start")
    await hangar.call_tool("a", "echo", {"text": "x"})
    await hangar.call_tool("a", "echo", {"text": "y"})
    with pytest.raises(Exception, match="Unknown tool"):
        await hangar.call_tool("a", "nope", {})
    r = await client.get("/api/system")
    assert r.status_code == 200
    info = r.json()["system"]
    assert info["version"] == __version__ and info["uptime_seconds"] >= 0
    assert info["total_mcp_servers"] == 2
    assert info["mcp_servers_by_state"]["ready"] == 1 and info["mcp_servers_by_state"]["cold"] == 1
    assert info["total_tools"] == len(RAW_TOOLS)
    assert info["total_invocations"] == 3 and info["total_failures"] == 1
    assert info["overall_success_rate"] == pytest.approx(2 / 3)


async def test_live_probe_is_healthy(api_factory) -> None:
    _, client = await api_factory({})
    r = await client.get("/health/live")
    assert r.status_code == 200 and r.json() == {"status": "healthy"}


@pytest.fixture
async def unstarted(tmp_path: Path) -> AsyncIterator[tuple[Hangar, httpx.AsyncClient]]:
    """An app whose Hangar has not been started yet (the test starts it)."""
    hangar = Hangar(loaded_config({"s": raw_server()}), tmp_path / "data")
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(hangar, manage_lifecycle=False)),
                               base_url="http://testserver")
    try:
        yield hangar, client
    finally:
        await client.aclose()
        await hangar.aclose()


async def test_ready_probe_is_503_until_startup_completes(unstarted) -> None:
    hangar, client = unstarted
    before = await client.get("/health/ready")
    assert before.status_code == 503 and before.json()["status"] == "starting"
    await hangar.start()
    after = await client.get("/health/ready")
    assert after.status_code == 200
    assert after.json() == {"status": "healthy", "startup_complete": True, "ready_mcp_servers": 0,
                            "total_mcp_servers": 1}


async def test_startup_probe_is_503_until_startup_completes(unstarted) -> None:
    hangar, client = unstarted
    before = await client.get("/health/startup")
    assert before.status_code == 503 and before.json()["startup_complete"] is False
    await hangar.start()
    after = await client.get("/health/startup")
    assert after.status_code == 200 and after.json()["status"] == "healthy"


async def test_ready_probe_is_503_when_the_store_is_unusable(api_factory) -> None:
    hangar, client = await api_factory({"s": raw_server()})
    assert (await client.get("/health/ready")).status_code == 200
    await hangar.store.close()
    r = await client.get("/health/ready")
    assert r.status_code == 503
    assert r.json()["status"] == "unhealthy" and "database" in r.json()["reason"]


async def test_ready_probe_counts_ready_servers(api_factory) -> None:
    _, client = await api_factory({"a": raw_server(), "b": raw_server()})
    await client.post("/api/mcp_servers/a/start")
    body = (await client.get("/health/ready")).json()
    assert body["ready_mcp_servers"] == 1 and body["total_mcp_servers"] == 2


# ------------------------------------------------------------------------------------- OpenAPI, docs

SPEC_TABLE = [  # the spec's "MCP servers" and "System" tables, plus probes and metrics
    ("GET", "/api/mcp_servers"), ("POST", "/api/mcp_servers"), ("GET", "/api/mcp_servers/{id}"),
    ("PUT", "/api/mcp_servers/{id}"), ("DELETE", "/api/mcp_servers/{id}"), ("POST", "/api/mcp_servers/{id}/start"),
    ("POST", "/api/mcp_servers/{id}/stop"), ("GET", "/api/mcp_servers/{id}/tools"),
    ("GET", "/api/mcp_servers/{id}/health"), ("GET", "/api/mcp_servers/{id}/logs"),
    ("GET", "/api/mcp_servers/{id}/tools/history"), ("GET", "/api/system"),
    ("GET", "/health/live"), ("GET", "/health/ready"), ("GET", "/health/startup"), ("GET", "/metrics"),
]


async def _openapi(client: httpx.AsyncClient) -> dict[str, Any]:
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    doc: dict[str, Any] = r.json()
    return doc


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    resolved: dict[str, Any] = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return resolved


async def test_openapi_documents_every_route_of_the_spec_table(api_factory) -> None:
    _, client = await api_factory({})
    paths = (await _openapi(client))["paths"]
    for method, path in SPEC_TABLE:
        documented = path.replace("{id}", "{server_id}")
        assert documented in paths, path
        assert method.lower() in paths[documented], f"{method} {path}"


async def test_openapi_documents_a_real_schema_for_every_json_response(api_factory) -> None:
    _, client = await api_factory({})
    doc = await _openapi(client)
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                content = response.get("content", {})
                if "application/json" not in content:
                    assert path == "/metrics" and "text/plain" in next(iter(content)), f"{method} {path}"
                    continue
                schema = _resolve(doc, content["application/json"]["schema"])
                assert schema.get("properties"), f"{method} {path} {status} has no schema"


async def test_openapi_documents_errors_with_the_envelope(api_factory) -> None:
    _, client = await api_factory({})
    doc = await _openapi(client)
    envelope = doc["components"]["schemas"]["ErrorEnvelope"]
    assert set(envelope["required"]) == ENVELOPE_KEYS
    for path, operations in doc["paths"].items():
        if not path.startswith("/api/mcp_servers"):
            continue
        for method, operation in operations.items():
            for status in ("404", "422"):
                schema = operation["responses"][status]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorEnvelope"}, f"{method} {path} {status}"
            assert "HTTPValidationError" not in json.dumps(operation)


async def test_openapi_request_bodies_carry_the_spec_fields_and_constraints(api_factory) -> None:
    _, client = await api_factory({})
    doc = await _openapi(client)
    create = _resolve(doc, doc["paths"]["/api/mcp_servers"]["post"]["requestBody"]["content"]["application/json"]
                      ["schema"])
    assert "mcp_server_id" in create["required"]
    assert create["properties"]["mcp_server_id"]["pattern"] == "^[A-Za-z0-9_-]{1,64}$"
    assert create["additionalProperties"] is False
    assert {"command", "mode", "env", "idle_ttl_s", "auto_start", "tools"} <= set(create["properties"])
    update_ref = (doc["paths"]["/api/mcp_servers/{server_id}"]["put"]["requestBody"]["content"]
                  ["application/json"]["schema"])
    update = _resolve(doc, update_ref)
    assert update["additionalProperties"] is False and "required" not in update
    idle = next(s for s in update["properties"]["idle_ttl_s"]["anyOf"] if s.get("type") == "number")
    assert idle["exclusiveMinimum"] == 0 and idle["maximum"] == 86400
    logs = doc["paths"]["/api/mcp_servers/{server_id}/logs"]["get"]["parameters"]
    lines = next(p for p in logs if p["name"] == "lines")["schema"]
    assert lines["minimum"] == 1 and lines["maximum"] == 1000


async def test_docs_page_is_served_and_points_at_the_openapi_document(api_factory) -> None:
    _, client = await api_factory({})
    r = await client.get("/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in r.text
