"""/metrics as a Prometheus scrape sees it: every family of the observability contract exists (families of
features not built yet with zero values), the text parses, and counters move when things happen."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from conftest import raw_server
from mcp_hangar.events import Event, event_class
from ws_helpers import open_stream

P = "mcp_hangar_"
MODERN = "2026-07-28"
ACCEPT = "application/json, text/event-stream"

# Every family the contract lists (families with labels have no sample until they are used).
FAMILIES = {
    "build_info": "gauge",  # Info families read back as gauges of value 1 with the info as labels
    "process_start_time_seconds": "gauge",
    "mcp_server_info": "gauge",
    "mcp_server_state": "gauge",
    "mcp_server_up": "gauge",
    "mcp_server_last_state_change_timestamp_seconds": "gauge",
    "mcp_server_starts": "counter",
    "mcp_server_stops": "counter",
    "mcp_server_cold_start_seconds": "histogram",
    "mcp_server_cold_start_in_progress": "gauge",
    "health_checks": "counter",
    "health_check_duration_seconds": "histogram",
    "health_check_consecutive_failures": "gauge",
    "tool_calls": "counter",
    "tool_call_errors": "counter",
    "tool_call_duration_seconds": "histogram",
    "calls_in_flight": "gauge",
    "group_state": "gauge",
    "group_members_in_rotation": "gauge",
    "group_circuit_open": "gauge",
    "discovery_cycles": "counter",
    "discovery_mcp_servers": "gauge",
    "discovery_errors": "counter",
    "config_reloads": "counter",
    "config_reload_failures": "counter",
    "auth_failures": "counter",
    "auth_denials": "counter",
    "rate_limit_hits": "counter",
    "http_requests": "counter",
    "http_request_duration_seconds": "histogram",
    "websocket_clients": "gauge",
    "websocket_dropped_events": "counter",
    "front_sessions": "gauge",
    "front_sessions_opened": "counter",
    "event_log_position": "gauge",
    "event_log_dropped": "counter",
    "events_compacted": "counter",
    "event_snapshots": "counter",
}


async def scrape(base: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base) as client:
        r = await client.get("/metrics")
    assert r.status_code == 200
    return {family.name: family for family in text_string_to_metric_families(r.text)}


def value(families: dict[str, Any], name: str, suffix: str = "", **labels: str) -> float | None:
    for s in families[P + name].samples:
        if s.name == P + name + suffix and s.labels == labels:
            found: float = s.value
            return found
    return None


async def test_every_family_exists_with_its_type_and_unbuilt_features_are_zero(http_factory) -> None:
    _, base = await http_factory({"s": raw_server()})
    families = await scrape(base)
    for name, kind in FAMILIES.items():
        assert P + name in families, name
        assert families[P + name].type == kind, name
    for name in ("config_reloads", "config_reload_failures", "auth_failures", "auth_denials", "rate_limit_hits",
                 "websocket_dropped_events"):
        assert value(families, name, "_total") == 0, name
    assert value(families, "websocket_clients") == 0
    assert value(families, "mcp_server_info", mcp_server="s", mode="subprocess", source="config",
                 protocol_version="") == 1


async def test_counters_and_gauges_move_with_calls_starts_and_health_checks(http_factory) -> None:
    hangar, base = await http_factory({"s": raw_server()})
    await hangar.call_tool("s", "echo", {"text": "x"})
    await hangar.get("s").health_check()
    slow = asyncio.ensure_future(hangar.call_tool("s", "sleep", {"seconds": 0.5}))
    async with asyncio.timeout(5):
        while hangar.get("s").in_flight == 0:  # the call has left the caller (no event marks that)
            await asyncio.sleep(0.005)
    during = await scrape(base)
    await slow
    after = await scrape(base)
    assert value(during, "calls_in_flight", mcp_server="s") == 1
    assert value(after, "calls_in_flight", mcp_server="s") == 0
    assert value(after, "tool_calls", "_total", mcp_server="s", tool="echo", outcome="success") == 1
    assert value(after, "tool_calls", "_total", mcp_server="s", tool="sleep", outcome="success") == 1
    assert value(after, "tool_call_duration_seconds", "_sum", mcp_server="s", tool="sleep") >= 0.5
    assert value(after, "mcp_server_starts", "_total", mcp_server="s") == 1
    assert value(after, "health_checks", "_total", mcp_server="s", result="passed") == 1
    assert value(after, "health_check_duration_seconds", "_count", mcp_server="s") == 1
    assert value(after, "health_check_consecutive_failures", mcp_server="s") == 0
    assert value(after, "mcp_server_last_state_change_timestamp_seconds", mcp_server="s") > 0
    assert value(after, "mcp_server_cold_start_in_progress", mcp_server="s") == 0
    assert value(after, "mcp_server_info", mcp_server="s", mode="subprocess", source="config",
                 protocol_version="2025-11-25") == 1
    assert value(after, "event_log_position") >= 8


async def test_consecutive_failures_are_reported_per_server(http_factory) -> None:
    hangar, base = await http_factory({"s": raw_server(call_timeout_s=0.2, max_consecutive_failures=5)})
    for _ in range(2):
        try:
            await hangar.call_tool("s", "hang", {})
        except Exception as exc:  # the timeout is the point
            assert "UpstreamTimeoutError" in type(exc).__name__
    assert value(await scrape(base), "health_check_consecutive_failures", mcp_server="s") == 2


async def test_front_sessions_are_counted_by_protocol_era(http_factory) -> None:
    _, base = await http_factory({"s": raw_server()})
    async with httpx.AsyncClient(base_url=base) as client:
        r = await client.post("/mcp", headers={"accept": ACCEPT}, json={
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t"}}})
        session = r.headers["mcp-session-id"]
        meta = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}
        for i in range(2):
            r = await client.post("/mcp", headers={"accept": ACCEPT, "mcp-protocol-version": MODERN,
                                                   "mcp-method": "tools/list"},
                                  json={"jsonrpc": "2.0", "id": i, "method": "tools/list", "params": {"_meta": meta}})
            assert r.status_code == 200
        families = await scrape(base)
        assert value(families, "front_sessions", era="legacy", transport="http") == 1
        assert value(families, "front_sessions_opened", "_total", era="legacy", transport="http") == 1
        assert value(families, "front_sessions_opened", "_total", era="modern", transport="http") == 2
        await client.delete("/mcp", headers={"mcp-session-id": session})
        assert value(await scrape(base), "front_sessions", era="legacy", transport="http") is None


async def test_websocket_clients_are_counted(http_factory) -> None:
    _, base = await http_factory({})
    clients = [await open_stream(base) for _ in range(2)]
    for client in clients:
        await client.send({"type": "ping"})
        await client.next()
    assert value(await scrape(base), "websocket_clients") == 2
    await clients[0].close()
    async with asyncio.timeout(5):
        while value(await scrape(base), "websocket_clients") != 1:
            await asyncio.sleep(0.01)  # the server notices the close on its own schedule
    await clients[1].close()


@event_class
class _ReloadFailedForTest(Event):
    """Stands in for the configuration feature's event: counted by its name."""

    @property
    def event_type(self) -> str:
        return "ConfigurationReloadFailed"


async def test_families_of_later_features_count_their_events_by_name(http_factory) -> None:
    hangar, base = await http_factory({})
    hangar.bus.publish(_ReloadFailedForTest())
    assert value(await scrape(base), "config_reload_failures", "_total") == 1


async def test_labels_stay_bounded_no_call_ids_or_principals(http_factory) -> None:
    hangar, base = await http_factory({"s": raw_server()})
    for i in range(5):
        await hangar.call_tool("s", "echo", {"text": str(i)})
    families = await scrape(base)
    labels = {key for family in families.values() for s in family.samples for key in s.labels}
    assert not labels & {"correlation_id", "call_id", "principal", "event_id", "session_id"}
