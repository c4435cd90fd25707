"""/api/ws/events over a real socket (uvicorn on loopback): filters, filter changes, rejected patterns,
replay without gap or duplicate, drop notices, keep-alive, Origin checks and shutdown."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from conftest import raw_server
from mcp_hangar.events import HealthCheckPassed
from mcp_hangar.web.app import create_app
from ws_helpers import EventClient, is_event, open_stream, serve_app

STATES = "McpServerStateChanged"


def transitions(messages: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(m["mcp_server_id"], m["old_state"], m["new_state"]) for m in messages if m.get("event_type") == STATES]


async def test_a_client_sees_exactly_one_servers_start_sequence_and_nothing_of_others(http_factory) -> None:
    _, base = await http_factory({"a": raw_server(), "b": raw_server()})
    client = await open_stream(base)
    ack, _ = await client.subscribe(event_types=[STATES], mcp_server_ids=["a"])
    assert ack == {"type": "subscribed", "event_types": [STATES], "rejected_event_types": [],
                   "mcp_server_ids": ["a"], "since": None}
    async with httpx.AsyncClient(base_url=base, timeout=30) as rest:
        starts = await asyncio.gather(rest.post("/api/mcp_servers/a/start"), rest.post("/api/mcp_servers/b/start"))
        assert [r.status_code for r in starts] == [200, 200]
        await rest.post("/api/mcp_servers/b/stop")
        await rest.post("/api/mcp_servers/a/stop")  # the last event this client can see
    got = await client.until(lambda m: m.get("new_state") == "cold")
    assert transitions(got) == [("a", "cold", "initializing"), ("a", "initializing", "ready"), ("a", "ready", "cold")]
    assert all(m["event_type"] == STATES and m["mcp_server_id"] == "a" for m in got)
    first = got[0]
    assert {"event_id", "occurred_at", "produced_by", "dead_reason"} <= set(first)
    await client.close()


async def test_a_new_subscribe_changes_the_filters_mid_stream(http_factory) -> None:
    hangar, base = await http_factory({"a": raw_server(), "b": raw_server()})
    client = await open_stream(base)
    await client.subscribe(event_types=[STATES], mcp_server_ids=["a"])
    await hangar.start_server("a")
    before = await client.until(lambda m: m.get("new_state") == "ready")
    assert transitions(before)[-1] == ("a", "initializing", "ready")
    ack, _ = await client.subscribe(event_types=["McpServerStarted", "McpServerStopped"], mcp_server_ids=["b"])
    assert ack["event_types"] == ["McpServerStarted", "McpServerStopped"] and ack["mcp_server_ids"] == ["b"]
    await hangar.stop_server("a")
    await hangar.start_server("b")
    await hangar.stop_server("b")
    after = await client.until(lambda m: m.get("event_type") == "McpServerStopped")
    assert [(m["event_type"], m["mcp_server_id"]) for m in after] == [("McpServerStarted", "b"),
                                                                      ("McpServerStopped", "b")]
    await client.close()


async def test_partial_wildcards_and_unknown_names_are_rejected_and_reported(http_factory) -> None:
    hangar, base = await http_factory({"a": raw_server()})
    client = await open_stream(base)
    asked = [STATES, "Foo*", "lifecycle/*", "*/McpServer*", "NoSuchEvent", "a/b/c", "nowhere/McpServerStarted", 7]
    ack, _ = await client.subscribe(event_types=asked, mcp_server_ids=["a"])
    assert ack["event_types"] == [STATES, "lifecycle/*"]
    assert ack["rejected_event_types"] == ["Foo*", "*/McpServer*", "NoSuchEvent", "a/b/c",
                                           "nowhere/McpServerStarted", 7]
    assert "whole segment" in ack["rejected_reasons"]["Foo*"]
    assert ack["rejected_reasons"]["NoSuchEvent"] == "unknown event type"
    # The accepted pattern works: lifecycle events arrive, administration and health ones do not.
    await hangar.start_server("a")
    got = await client.until(lambda m: m.get("event_type") == "McpServerStarted")
    assert {m["event_type"] for m in got} == {STATES, "McpServerStarted"}
    await client.close()


async def test_segment_patterns_match_by_category_or_by_name(http_factory) -> None:
    hangar, base = await http_factory({"a": raw_server()})
    client = await open_stream(base)
    await client.subscribe(event_types=["*/McpServerStarted", "health/*"])
    await hangar.start_server("a")
    await hangar.get("a").health_check()
    got = await client.until(lambda m: m.get("event_type") == "HealthCheckPassed")
    assert [m["event_type"] for m in got] == ["McpServerStarted", "HealthCheckPassed"]
    await client.close()


async def _publish_numbered(hangar: Any, start: int, count: int, server: str = "s") -> None:
    for i in range(start, start + count):
        hangar.bus.publish(HealthCheckPassed(mcp_server_id=server, duration_ms=float(i)))


async def test_replay_since_an_event_id_after_a_disconnect_has_no_gap_and_no_duplicate(http_factory) -> None:
    hangar, base = await http_factory({})
    numbers: list[int] = []
    stop = asyncio.Event()

    async def publisher() -> None:  # events keep coming while the client is away and reconnecting
        i = 0
        while not stop.is_set():
            await _publish_numbered(hangar, i, 5)
            i += 5
            await asyncio.sleep(0.001)  # paces the producer (a few thousand events a second)

    first = await open_stream(base)
    await first.subscribe(event_types=["HealthCheckPassed"], mcp_server_ids=["s"])
    task = asyncio.get_running_loop().create_task(publisher())
    seen = await first.until(lambda m: is_event(m) and m["duration_ms"] >= 300)
    numbers += [int(m["duration_ms"]) for m in seen if is_event(m)]
    last_id = seen[-1]["event_id"]
    await first.close()

    second = await open_stream(base)
    ack, _ = await second.subscribe(event_types=["HealthCheckPassed"], mcp_server_ids=["s"], since=last_id)
    assert ack["since"] == last_id
    replayed = await second.until(lambda m: m.get("type") == "replay_complete")
    assert replayed[-1]["count"] == len(replayed) - 1 > 0
    live = await second.until(lambda m: is_event(m) and m["duration_ms"] >= numbers[-1] + 2000)
    stop.set()
    await task
    numbers += [int(m["duration_ms"]) for m in replayed + live if is_event(m)]
    assert numbers == list(range(numbers[-1] + 1)), "the stream has a gap or a duplicate"
    assert not any(m.get("type") == "dropped" for m in live)
    await second.close()


async def test_replay_since_a_time_sends_the_later_events_first(http_factory) -> None:
    hangar, base = await http_factory({})
    await _publish_numbered(hangar, 0, 10)
    cut = time.time()
    await asyncio.sleep(0.01)  # a distinct timestamp for the events after the cut
    await _publish_numbered(hangar, 10, 10)
    client = await open_stream(base)
    await client.subscribe(event_types=["HealthCheckPassed"], since=cut)
    replayed = await client.until(lambda m: m.get("type") == "replay_complete")
    assert [int(m["duration_ms"]) for m in replayed if is_event(m)] == list(range(10, 20))
    await _publish_numbered(hangar, 20, 1)
    assert (await client.next())["duration_ms"] == 20
    await client.close()


async def test_an_unknown_since_is_reported_and_the_live_stream_goes_on(http_factory) -> None:
    hangar, base = await http_factory({})
    client = await open_stream(base)
    await client.subscribe(event_types=["HealthCheckPassed"], since="0" * 32)
    error = await client.next()
    assert error["type"] == "error" and "not in the event log" in error["message"]
    await _publish_numbered(hangar, 1, 1)
    assert (await client.next())["duration_ms"] == 1
    await client.close()


async def test_a_full_queue_drops_the_oldest_and_says_how_many(http_factory) -> None:
    hangar, base = await http_factory({}, extra={"observability": {"ws_queue_size": 16}})
    client = await open_stream(base)
    await client.subscribe(event_types=["HealthCheckPassed"])
    await _publish_numbered(hangar, 0, 100)  # in one step: the writer cannot send anything meanwhile
    notice = await client.next()
    assert notice == {"type": "dropped", "count": 84}
    rest = [await client.next() for _ in range(16)]
    assert [int(m["duration_ms"]) for m in rest] == list(range(84, 100))
    r = await httpx.AsyncClient(base_url=base).get("/metrics")
    assert "mcp_hangar_websocket_dropped_events_total 84.0" in r.text
    assert "mcp_hangar_websocket_clients 1.0" in r.text
    await client.close()


async def test_events_before_the_first_subscribe_are_held_for_it(http_factory) -> None:
    hangar, base = await http_factory({})
    client = await open_stream(base)
    await _publish_numbered(hangar, 0, 3)
    _, early = await client.subscribe(event_types=["HealthCheckPassed"])
    assert early == []  # nothing is sent before the first subscribe (within the grace period)
    got = [await client.next() for _ in range(3)]
    assert [m["duration_ms"] for m in got] == [0, 1, 2]
    await client.close()


async def test_ping_pong_keeps_a_client_and_silence_closes_it(http_factory) -> None:
    _, base = await http_factory({}, extra={"observability": {"ws_ping_interval_s": 0.2, "ws_ping_timeout_s": 0.5}})
    client = await open_stream(base)
    await client.send({"type": "ping"})
    assert await client.next() == {"type": "pong"}
    for _ in range(2):  # answered pings keep the connection
        assert await client.next(timeout=5) == {"type": "ping"}
        await client.send({"type": "pong"})
    silent = await open_stream(base)
    assert await silent.next(timeout=5) == {"type": "ping"}
    with pytest.raises(ConnectionClosed) as closed:
        await silent.next(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    assert closed.value.rcvd.reason == "no pong"
    await client.close()


async def test_garbage_from_the_client_gets_an_error_and_the_stream_stays(http_factory) -> None:
    hangar, base = await http_factory({})
    client = await open_stream(base)
    await client.ws.send("not json")
    assert (await client.next())["type"] == "error"
    await client.send({"type": "dance"})
    assert (await client.next())["type"] == "error"
    await client.subscribe(event_types=["HealthCheckPassed"])
    await _publish_numbered(hangar, 5, 1)
    assert (await client.next())["duration_ms"] == 5
    await client.close()


async def _close_code(client: EventClient) -> int | None:
    with pytest.raises(ConnectionClosed) as closed:
        await client.next(timeout=5)
    return closed.value.rcvd.code if closed.value.rcvd is not None else None


async def test_an_origin_outside_the_cors_allow_list_is_closed_with_1008(http_factory, monkeypatch) -> None:
    monkeypatch.setenv("MCP_CORS_ORIGINS", "https://dashboard.example.com")
    hangar, base = await http_factory({})
    refused = await open_stream(base, origin="https://evil.example.com")
    assert await _close_code(refused) == 1008
    allowed = await open_stream(base, origin="https://dashboard.example.com")
    tool = await open_stream(base)  # no Origin: not a browser
    for client in (allowed, tool):
        await client.subscribe(event_types=["HealthCheckPassed"])
    await _publish_numbered(hangar, 1, 1)
    for client in (allowed, tool):
        assert (await client.next())["duration_ms"] == 1
        await client.close()


async def test_any_origin_is_allowed_by_default(http_factory) -> None:
    _, base = await http_factory({})
    client = await open_stream(base, origin="https://anywhere.example")
    await client.send({"type": "ping"})
    assert await client.next() == {"type": "pong"}
    await client.close()


async def test_shutdown_closes_every_socket_at_once_and_refuses_new_ones(hangar_factory) -> None:
    hangar = await hangar_factory({})
    app = create_app(hangar, manage_lifecycle=False)
    async with serve_app(app) as base:
        clients = [await open_stream(base) for _ in range(3)]
        await clients[0].subscribe(event_types=["HealthCheckPassed"])
        began = time.monotonic()
        app.state.begin_shutdown()
        codes = [await _close_code(c) for c in clients]
        elapsed = time.monotonic() - began
        assert codes == [1001, 1001, 1001]
        assert elapsed < 2.0
        with pytest.raises(InvalidStatus):
            await open_stream(base)


async def test_the_event_log_feeds_the_stream_only_while_a_client_is_connected(http_factory) -> None:
    hangar, base = await http_factory({"a": raw_server()})
    assert hangar.event_log._taps == []  # no client: an event costs the stream nothing
    first, second = await open_stream(base), await open_stream(base)
    for client in (first, second):
        await client.send({"type": "ping"})
        await client.next()
    assert len(hangar.event_log._taps) == 1  # one tap, whatever the number of clients
    await first.close()
    await hangar.start_server("a")  # the one still connected keeps receiving
    await second.until(lambda m: m.get("event_type") == "McpServerStarted")
    await second.close()
    async with asyncio.timeout(5):
        while hangar.event_log._taps:
            await asyncio.sleep(0.01)  # the server notices the close on its own schedule


async def test_serve_http_loads_the_websocket_protocol_at_the_first_upgrade_and_streams(tmp_path) -> None:
    """``mcp-hangar serve --http`` as shipped: the WebSocket implementation is not imported at boot (its
    C extension is not mapped into the process), then the first stream loads it and works."""
    from conftest import HANGAR_CLI, free_port

    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        HANGAR_CLI, "serve", "--http", "--port", str(port), "--data-dir", str(tmp_path / "d"),
        "--log-level", "WARNING", stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"

    def websockets_mapped() -> bool:
        with open(f"/proc/{proc.pid}/maps") as maps:
            return "websockets/speedups" in maps.read()

    try:
        async with httpx.AsyncClient(base_url=base, timeout=5) as rest:
            async with asyncio.timeout(30):
                while True:  # the process has no readiness event to wait on but its probe
                    try:
                        if (await rest.get("/health/ready")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    assert proc.returncode is None, "serve --http exited"
                    await asyncio.sleep(0.05)
        assert not websockets_mapped()
        client = await open_stream(base)
        ack, _ = await client.subscribe(event_types=[STATES])
        assert ack["type"] == "subscribed" and ack["event_types"] == [STATES]
        await client.close()
        assert websockets_mapped()  # the check above can tell
    finally:
        if proc.returncode is None:
            proc.terminate()
        await asyncio.wait_for(proc.wait(), 15)
