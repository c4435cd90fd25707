"""The supervisor with real fixture processes: states, start, lazy start, idle stop, health, backoff, logs, events."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from conftest import raw_server
from lifecycle_helpers import drain, fixture_processes, gone, of, server_pid, state_to, text_of, transitions, wait_until
from mcp_hangar.errors import (
    McpServerStartError,
    McpServerUnavailableError,
    UpstreamCrashedError,
    UpstreamTimeoutError,
)
from mcp_hangar.events import (
    HealthCheckFailed,
    HealthCheckPassed,
    McpServerCrashed,
    McpServerStarted,
    McpServerStopped,
    ToolInvocationCompleted,
    ToolInvocationRequested,
)
from mcp_hangar.models import STARTABLE, TRANSITIONS, DeadReason, State, can_transition
from mcp_hangar.supervisor import BACKOFF_CAP_S, GIVEN_UP_AFTER, LOG_RING_LINES

SOME_FIXTURE_TOOLS = {"echo", "add", "sleep", "crash", "hang", "garbage", "big", "fail", "stderr", "pid", "env"}


# ---------------------------------------------------------------- the state machine


def test_transition_table_names_every_state_and_nothing_else() -> None:
    assert set(TRANSITIONS) == set(State)
    for targets in TRANSITIONS.values():
        assert targets <= set(State)
    # Nothing becomes READY without initializing, except a degraded server that passes a health check.
    assert {old for old in State if can_transition(old, State.READY)} == {State.INITIALIZING, State.DEGRADED}
    assert all(can_transition(s, State.INITIALIZING) for s in STARTABLE)
    assert not can_transition(State.COLD, State.DEAD)


async def test_a_transition_outside_the_table_is_refused(hangar_factory) -> None:
    hangar = await hangar_factory({"s": raw_server()})
    server = hangar.get("s")
    with pytest.raises(RuntimeError, match="invalid transition"):
        server._set_state(State.READY)
    assert server.state == State.COLD


# ---------------------------------------------------------------- start


async def test_explicit_start_goes_cold_initializing_ready_with_events(hangar_factory) -> None:
    hangar = await hangar_factory({"s": raw_server()})
    server = hangar.get("s")
    assert server.state == State.COLD
    with hangar.bus.subscription() as sub:
        await hangar.start_server("s")
        events = await drain(sub)
    assert transitions(events, "s") == [("cold", "initializing"), ("initializing", "ready")]
    started = [e for e in events if isinstance(e, McpServerStarted)]
    assert len(started) == 1
    assert started[0].pid == server.pid == await server_pid(hangar, "s")
    assert started[0].tools_count == len(server.tools)
    assert {t["name"] for t in server.tools} >= SOME_FIXTURE_TOOLS
    assert started[0].startup_duration_ms > 0
    assert server.state == State.READY and server.alive


async def test_start_follows_every_tools_list_page(hangar_factory) -> None:
    hangar = await hangar_factory({"paged": raw_server("--page-size", "2"), "whole": raw_server()})
    with hangar.bus.subscription(predicate=of(McpServerStarted, "paged")) as sub:
        await hangar.start_server("paged")
        started = await sub.get(timeout=1)
    await hangar.start_server("whole")
    paged, whole = hangar.get("paged").tools, hangar.get("whole").tools
    assert len(paged) > 2 * 2  # more than two pages of two
    assert paged == whole
    assert isinstance(started, McpServerStarted) and started.tools_count == len(whole)
    assert hangar.get("paged").tools_origin == "live"


async def test_first_call_starts_a_cold_server(hangar_factory) -> None:
    hangar = await hangar_factory({"s": raw_server()})
    assert hangar.get("s").state == State.COLD and hangar.get("s").pid is None
    with hangar.bus.subscription(predicate=of(McpServerStarted, "s")) as sub:
        result = await hangar.call_tool("s", "echo", {"text": "hi"})
        assert sub.pending() == 1
    assert text_of(result) == "hi"
    assert hangar.get("s").state == State.READY


async def test_fifty_concurrent_first_calls_share_one_start(hangar_factory) -> None:
    hangar = await hangar_factory({"s": raw_server()})
    server = hangar.get("s")
    with hangar.bus.subscription(maxsize=10_000, predicate=of(McpServerStarted, "s")) as sub:
        results = await asyncio.gather(*(server.call_tool("pid", {}) for _ in range(50)))
        starts = await drain(sub)
    pids = {int(text_of(r)) for r in results}
    assert len(starts) == 1
    assert pids == {server.pid}
    assert isinstance(starts[0], McpServerStarted) and starts[0].pid == server.pid


async def test_first_calls_beyond_max_concurrency_wait_on_the_one_start_and_one_tool_list(hangar_factory) -> None:
    # A second tools/list would fail (--fail-tools-list-after 1): no waiter refetches what the start fetched.
    hangar = await hangar_factory({"s": raw_server("--fail-tools-list-after", "1", max_concurrency=10)})
    server = hangar.get("s")
    with hangar.bus.subscription(maxsize=10_000) as sub:
        results = await asyncio.gather(*(server.call_tool("echo", {"text": f"c{i}"}) for i in range(50)))
        events = await drain(sub)
    assert [text_of(r) for r in results] == [f"c{i}" for i in range(50)]
    kinds = [type(e) for e in events if getattr(e, "mcp_server_id", None) == "s"]
    started = kinds.index(McpServerStarted)
    # Every caller was admitted and waiting before the one start finished; all were answered after it.
    assert kinds[:started].count(ToolInvocationRequested) == 50 and kinds.count(McpServerStarted) == 1
    assert kinds[started:].count(ToolInvocationCompleted) == 50
    assert server.in_flight == 0 and server.total_invocations == 50 and server.state == State.READY


async def test_stop_during_start_gives_the_waiting_caller_a_clear_error(hangar_factory) -> None:
    hangar = await hangar_factory({"s": raw_server("--hang-on-initialize", startup_timeout_s=30)})
    server = hangar.get("s")
    with hangar.bus.subscription() as sub:
        call = asyncio.create_task(server.call_tool("echo", {"text": "x"}))
        await sub.wait_for(state_to("s", "initializing"), timeout=2)
        await wait_until(lambda: bool(fixture_processes()), 2, "the process to be spawned")
        pids = [p.pid for p in fixture_processes()]
        await server.stop()
        with pytest.raises(McpServerUnavailableError):
            await asyncio.wait_for(call, 2)
        await sub.wait_for(state_to("s", "cold"), timeout=2)
    assert server.state == State.COLD
    assert all(gone(pid) for pid in pids)


# ---------------------------------------------------------------- stop and idle


async def test_stop_closes_stdin_and_publishes_stopped(hangar_factory) -> None:
    hangar = await hangar_factory({"s": raw_server()})
    await hangar.start_server("s")
    pid = hangar.get("s").pid
    assert pid is not None
    with hangar.bus.subscription() as sub:
        assert await hangar.stop_server("s") is True
        events = await drain(sub)
    stopped = [e for e in events if isinstance(e, McpServerStopped)]
    assert len(stopped) == 1 and stopped[0].reason == "user_request"
    assert stopped[0].exit_code == 0  # the fixture exits by itself when its stdin closes
    assert transitions(events, "s") == [("ready", "cold")]
    assert gone(pid)
    assert await hangar.stop_server("s") is False  # idempotent


async def test_idle_server_stops_after_idle_ttl(hangar_factory) -> None:
    hangar = await hangar_factory({"s": raw_server(idle_ttl_s=1)})
    with hangar.bus.subscription() as sub:
        await hangar.start_server("s")
        pid = hangar.get("s").pid
        began = time.monotonic()
        stopped = await sub.wait_for(of(McpServerStopped, "s", reason="idle"), timeout=4)
    assert time.monotonic() - began >= 0.9
    assert isinstance(stopped, McpServerStopped)
    assert hangar.get("s").state == State.COLD
    assert pid is not None and gone(pid)


async def test_idle_stop_leaves_a_server_with_a_call_in_flight(hangar_factory) -> None:
    hangar = await hangar_factory({"s": raw_server(idle_ttl_s=0.5)})
    with hangar.bus.subscription(predicate=of(McpServerStopped, "s")) as sub:
        result = await hangar.call_tool("s", "sleep", {"seconds": 1.2})  # spans at least one tick
        assert sub.pending() == 0
    assert text_of(result) == "slept"
    assert hangar.get("s").state == State.READY


async def test_an_idle_stop_that_finds_a_call_in_flight_does_nothing(hangar_factory) -> None:
    # The ticker decides, then the stop runs as its own task: a call may begin in between.
    hangar = await hangar_factory({"s": raw_server()})
    await hangar.start_server("s")
    server = hangar.get("s")
    call = asyncio.create_task(server.call_tool("sleep", {"seconds": 0.3}))
    await wait_until(lambda: server.in_flight == 1, 2, "the call to be in flight")
    with hangar.bus.subscription(predicate=of(McpServerStopped, "s")) as sub:
        assert await server.stop("idle") is False
        assert text_of(await call) == "slept"
        assert sub.pending() == 0
    assert server.state == State.READY


async def test_next_call_after_idle_stop_starts_a_new_process(hangar_factory) -> None:
    hangar = await hangar_factory({"s": raw_server(idle_ttl_s=1)})
    first = await server_pid(hangar, "s")
    with hangar.bus.subscription() as sub:
        await sub.wait_for(of(McpServerStopped, "s", reason="idle"), timeout=4)
    second = await server_pid(hangar, "s")
    assert second != first
    assert hangar.get("s").state == State.READY


# ---------------------------------------------------------------- health


async def test_failing_health_checks_degrade_after_max_consecutive_failures(hangar_factory) -> None:
    spec = raw_server("--fail-tools-list-after", "1", health_check_interval_s=0.1, max_consecutive_failures=2)
    hangar = await hangar_factory({"s": spec})
    with hangar.bus.subscription() as sub:
        await hangar.start_server("s")  # the start's own tools/list is the one that succeeds
        first = await sub.wait_for(of(HealthCheckFailed, "s"), timeout=3)
        assert isinstance(first, HealthCheckFailed) and first.consecutive_failures == 1
        assert hangar.get("s").state == State.READY
        await sub.wait_for(of(HealthCheckFailed, "s", consecutive_failures=2), timeout=3)
        await sub.wait_for(state_to("s", "degraded", old_state="ready"), timeout=1)
    assert hangar.get("s").state == State.DEGRADED
    assert hangar.get("s").health_status() == "degraded"


async def test_passing_health_check_returns_a_degraded_server_to_ready(hangar_factory) -> None:
    spec = raw_server(health_check_interval_s=0.1, max_consecutive_failures=1, call_timeout_s=0.3)
    hangar = await hangar_factory({"s": spec})
    with hangar.bus.subscription() as sub:
        await hangar.start_server("s")
        with pytest.raises(UpstreamTimeoutError):
            await hangar.call_tool("s", "hang")
        assert hangar.get("s").state == State.DEGRADED
        passed = await sub.wait_for(of(HealthCheckPassed, "s"), timeout=3)
        await sub.wait_for(state_to("s", "ready", old_state="degraded"), timeout=1)
    assert isinstance(passed, HealthCheckPassed) and passed.duration_ms >= 0
    assert hangar.get("s").consecutive_failures == 0


# ---------------------------------------------------------------- crash and backoff


async def test_crash_sets_dead_crashed_with_a_one_second_backoff(hangar_factory) -> None:
    hangar = await hangar_factory({"s": raw_server()})
    await hangar.start_server("s")
    with hangar.bus.subscription() as sub:
        with pytest.raises(UpstreamCrashedError):
            await hangar.call_tool("s", "crash")
        crashed = await sub.wait_for(of(McpServerCrashed, "s"), timeout=1)
        events = await drain(sub)
    server = hangar.get("s")
    assert isinstance(crashed, McpServerCrashed) and crashed.exit_code == 3
    assert server.state == State.DEAD and server.dead_reason == DeadReason.CRASHED
    info = server.dead_info()
    assert info is not None and info["reason"] == "crashed"
    assert info["retry_allowed_at"] - info["since"] == pytest.approx(1.0, abs=0.05)
    assert not [e for e in events if isinstance(e, McpServerStarted)]


async def test_lazy_call_during_backoff_is_refused(hangar_factory) -> None:
    hangar = await hangar_factory({"s": raw_server()})
    await hangar.start_server("s")
    with pytest.raises(UpstreamCrashedError):
        await hangar.call_tool("s", "crash")
    with hangar.bus.subscription(predicate=of(McpServerStarted, "s")) as sub:
        with pytest.raises(McpServerUnavailableError, match="next start allowed in"):
            await hangar.call_tool("s", "echo", {"text": "x"})
        assert sub.pending() == 0
    assert hangar.get("s").state == State.DEAD


async def test_explicit_start_is_allowed_during_backoff(hangar_factory) -> None:
    hangar = await hangar_factory({"s": raw_server()})
    first = await server_pid(hangar, "s")
    with pytest.raises(UpstreamCrashedError):
        await hangar.call_tool("s", "crash")
    with hangar.bus.subscription() as sub:
        await hangar.get("s").ensure_ready(explicit=True)
        events = await drain(sub)
    assert transitions(events, "s") == [("dead", "initializing"), ("initializing", "ready")]
    assert await server_pid(hangar, "s") != first
    assert hangar.get("s").retry_allowed_at is None and hangar.get("s").dead_info() is None


async def test_lazy_call_after_backoff_restarts_the_server(hangar_factory) -> None:
    hangar = await hangar_factory({"s": raw_server()})
    first = await server_pid(hangar, "s")
    with pytest.raises(UpstreamCrashedError):
        await hangar.call_tool("s", "crash")
    retry_at = hangar.get("s").retry_allowed_at
    assert retry_at is not None
    await wait_until(lambda: time.time() >= retry_at, 2, "the backoff to pass")
    assert await server_pid(hangar, "s") != first
    assert hangar.get("s").state == State.READY


async def test_failed_starts_double_the_backoff_then_give_up(hangar_factory) -> None:
    hangar = await hangar_factory({"s": raw_server("--exit-on-initialize")})
    server = hangar.get("s")
    delays, reasons = [], []
    for _ in range(GIVEN_UP_AFTER + 1):
        with pytest.raises(McpServerStartError):
            await server.ensure_ready(explicit=True)
        assert server.retry_allowed_at is not None and server.dead_since is not None
        delays.append(round(server.retry_allowed_at - server.dead_since))
        reasons.append(server.dead_reason)
    assert delays == [1, 2, 4, 8, 16, 32, BACKOFF_CAP_S]
    assert reasons == [DeadReason.START_FAILED] * (GIVEN_UP_AFTER - 1) + [DeadReason.GIVEN_UP] * 2


# ---------------------------------------------------------------- logs


async def test_stderr_ring_keeps_exactly_the_newest_1000_lines(hangar_factory) -> None:
    hangar = await hangar_factory({"s": raw_server()})
    await hangar.start_server("s")
    await hangar.call_tool("s", "stderr", {"lines": 1500})
    logs = hangar.get("s").logs
    await wait_until(lambda: bool(logs) and logs[-1].content == "log line 1499", 3, "the last stderr line")
    assert len(logs) == LOG_RING_LINES == 1000
    assert [line.content for line in logs] == [f"log line {i}" for i in range(500, 1500)]


async def test_a_long_stderr_line_is_cut_at_8_kib_and_the_next_lines_stay_intact(hangar_factory) -> None:
    hangar = await hangar_factory({"s": raw_server("--stderr-on-start", "x" * 20_000)})
    await hangar.start_server("s")
    await hangar.call_tool("s", "stderr", {"lines": 2})
    logs = hangar.get("s").logs
    await wait_until(lambda: any(line.content == "log line 1" for line in logs), 3, "the stderr lines")
    contents = [line.content for line in logs]
    assert contents == ["x" * 8192, "log line 0", "log line 1"]


async def test_stderr_of_a_server_that_dies_during_start_is_kept(hangar_factory) -> None:
    hangar = await hangar_factory({"s": raw_server("--exit-on-initialize")})
    with pytest.raises(McpServerStartError):
        await hangar.start_server("s")
    contents = [line.content for line in hangar.get("s").logs]
    assert "exiting during handshake" in contents
    assert any(c.startswith("[hangar] start failed") for c in contents)


# ---------------------------------------------------------------- invocation events


async def test_a_completed_call_publishes_requested_and_completed_with_sizes(hangar_factory) -> None:
    hangar = await hangar_factory({"s": raw_server()})
    await hangar.start_server("s")
    arguments = {"text": "hello"}
    with hangar.bus.subscription() as sub:
        result = await hangar.call_tool("s", "echo", arguments)
        events = await drain(sub)
    requested = [e for e in events if isinstance(e, ToolInvocationRequested)]
    completed = [e for e in events if isinstance(e, ToolInvocationCompleted)]
    assert len(requested) == len(completed) == 1
    req, done = requested[0], completed[0]
    assert req.tool_name == done.tool_name == "echo"
    assert req.correlation_id == done.correlation_id
    assert req.arguments_size_bytes == done.arguments_size_bytes == len(orjson.dumps(arguments))
    assert done.result_size_bytes == len(orjson.dumps(result))
    assert done.duration_ms > 0 and done.is_error is False
    assert hangar.get("s").total_invocations == 1


async def test_a_tool_error_result_is_a_result_and_not_a_failure(hangar_factory) -> None:
    hangar = await hangar_factory({"s": raw_server(max_consecutive_failures=1)})
    await hangar.start_server("s")
    with hangar.bus.subscription(predicate=of(ToolInvocationCompleted, "s")) as sub:
        for _ in range(2):
            result = await hangar.call_tool("s", "fail")
            assert result["isError"] is True and text_of(result) == "tool failed"
        done = await drain(sub)
    assert [e.is_error for e in done if isinstance(e, ToolInvocationCompleted)] == [True, True]
    server = hangar.get("s")
    assert server.state == State.READY
    assert server.consecutive_failures == 0 and server.total_failures == 0
