"""``graceful`` on a reload, with a real slow tool (the fixture server's ``sleep``) over real pipes:
graceful (the default) lets a server that restarts or goes finish its running calls, bounded by
``config_reload.drain_timeout_s``, while new calls wait for the new process (or, for a removed server,
get a 404; a group routes around it); ``graceful: false`` stops it at once and the running calls get a
503 that says why."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from config_helpers import Recorder, alive, file_hangar, wait_for, write_config

from conftest import raw_server
from mcp_hangar.errors import McpServerNotFoundError, McpServerUnavailableError
from mcp_hangar.front.management import Management
from mcp_hangar.hangar import Hangar

__all__ = ["file_hangar"]  # the fixture


def doc(servers: dict[str, Any], drain_s: float = 30.0, groups: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"mcp_servers": servers, "groups": groups or {},
            "config_reload": {"enabled": False, "drain_timeout_s": drain_s}}


def text(result: dict[str, Any]) -> str:
    return str(result["content"][0]["text"])


async def started_call(hangar: Hangar, sid: str, seconds: float) -> asyncio.Task[dict[str, Any]]:
    """A ``sleep`` call on ``sid``, running once this returns."""
    server = await hangar.start_server(sid)
    running = server.in_flight
    task = asyncio.create_task(hangar.call_tool(sid, "sleep", {"seconds": seconds}))
    await wait_for(lambda: server.in_flight > running, "the slow call to reach the server")
    return task


async def test_a_graceful_restart_lets_the_running_call_finish_and_new_calls_wait_for_the_new_process(
        file_hangar: Any) -> None:
    hangar, client, path = await file_hangar(doc({"slow": raw_server(env={"GEN": "1"})}))
    old_pid = int(text(await hangar.call_tool("slow", "pid", {})))
    events = Recorder(hangar)
    running = await started_call(hangar, "slow", 1.5)
    write_config(path, doc({"slow": raw_server(env={"GEN": "2"})}))
    reload = asyncio.create_task(client.post("/api/config/reload", json={}))  # graceful is the default
    server = hangar.get("slow")
    await wait_for(lambda: server.held, "the reload to hold the server")
    waiting = asyncio.create_task(hangar.call_tool("slow", "pid", {}))  # arrives during the drain
    finished: list[str] = []
    running.add_done_callback(lambda _: finished.append("running"))
    waiting.add_done_callback(lambda _: finished.append("waiting"))

    assert text(await running) == "slept"  # finished on the old process
    r = await reload
    assert r.status_code == 200, r.text
    result = r.json()["result"]
    assert result["mcp_servers_restarted"] == ["slow"] and result["graceful"] is True
    assert result["interrupted_calls"] == 0
    new_pid = int(text(await waiting))
    assert finished == ["running", "waiting"]  # the new call waited for the drain and the restart
    assert new_pid == server.pid and new_pid != old_pid and not alive(old_pid)
    assert events.of("ToolInvocationFailed") == []


async def test_graceful_false_stops_at_once_and_the_running_call_gets_a_clear_error(file_hangar: Any) -> None:
    hangar, client, path = await file_hangar(doc({"slow": raw_server(env={"GEN": "1"})}))
    running = await started_call(hangar, "slow", 60)
    old_pid = hangar.get("slow").pid
    write_config(path, doc({"slow": raw_server(env={"GEN": "2"})}))
    r = await client.post("/api/config/reload", json={"graceful": False})
    assert r.status_code == 200, r.text
    result = r.json()["result"]
    assert result["graceful"] is False and result["interrupted_calls"] == 1
    with pytest.raises(McpServerUnavailableError) as cut:
        await running
    assert cut.value.status_code == 503
    assert "was stopped (config_reload) while this call was running" in cut.value.message
    assert hangar.get("slow").pid not in (None, old_pid) and not alive(old_pid)
    assert text(await hangar.call_tool("slow", "echo", {"text": "after"})) == "after"


async def test_the_drain_is_bounded_by_drain_timeout_s(file_hangar: Any) -> None:
    hangar, client, path = await file_hangar(doc({"slow": raw_server(env={"GEN": "1"})}, drain_s=0.3))
    running = await started_call(hangar, "slow", 60)
    write_config(path, doc({"slow": raw_server(env={"GEN": "2"})}, drain_s=0.3))
    r = await client.post("/api/config/reload")
    assert r.status_code == 200 and r.json()["result"]["interrupted_calls"] == 1
    with pytest.raises(McpServerUnavailableError, match="stopped"):
        await running


async def test_a_graceful_removal_finishes_the_running_call_and_refuses_new_ones(file_hangar: Any) -> None:
    hangar, client, path = await file_hangar(doc({"slow": raw_server(), "stay": raw_server()}))
    running = await started_call(hangar, "slow", 1.5)
    pid = hangar.get("slow").pid
    server = hangar.get("slow")
    write_config(path, doc({"stay": raw_server()}))
    reload = asyncio.create_task(client.post("/api/config/reload", json={"graceful": True}))
    await wait_for(lambda: server.held, "the reload to hold the server")
    late = asyncio.create_task(hangar.call_tool("slow", "echo", {"text": "late"}))
    assert text(await running) == "slept"
    r = await reload
    assert r.status_code == 200 and r.json()["result"]["mcp_servers_removed"] == ["slow"]
    with pytest.raises(McpServerNotFoundError):
        await late
    assert "slow" not in hangar.servers and not alive(pid)
    gone = await client.post("/api/mcp_servers/slow/start")
    assert gone.status_code == 404 and gone.json()["error"] == "McpServerNotFoundError"


async def test_a_group_routes_around_a_member_a_reload_is_draining(file_hangar: Any) -> None:
    group = {"pool": {"strategy": "round_robin", "members": [{"id": "m1"}, {"id": "m2"}]}}
    servers = {"m1": raw_server(env={"GEN": "1"}), "m2": raw_server()}
    hangar, client, path = await file_hangar(doc(servers, groups=group))
    m1, m2 = hangar.get("m1"), hangar.get("m2")
    await hangar.start_server("m1")
    await hangar.start_server("m2")
    running = await started_call(hangar, "m1", 4)  # m1 is held as long as this call runs
    write_config(path, doc({**servers, "m1": raw_server(env={"GEN": "2"})}, groups=group))
    reload = asyncio.create_task(client.post("/api/config/reload"))
    await wait_for(lambda: m1.held, "the reload to hold m1")
    answers = [text(await hangar.call_tool("pool", "pid", {})) for _ in range(3)]
    assert answers == [str(m2.pid)] * 3  # served by the member that is not draining, without waiting
    assert text(await running) == "slept"
    assert (await reload).status_code == 200


async def test_the_mcp_tool_passes_graceful_on(file_hangar: Any) -> None:
    hangar, _, path = await file_hangar(doc({"slow": raw_server(env={"GEN": "1"})}))
    running = await started_call(hangar, "slow", 60)
    write_config(path, doc({"slow": raw_server(env={"GEN": "2"})}))
    result = await Management(hangar).call("hangar_reload_config", {"graceful": False})
    assert result["isError"] is False
    assert result["structuredContent"]["result"]["graceful"] is False
    with pytest.raises(McpServerUnavailableError):
        await running
    refused = await Management(hangar).call("hangar_reload_config", {"graceful": "yes"})
    assert refused["isError"] is True and refused["structuredContent"]["error"] == "ValidationError"
