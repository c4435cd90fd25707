"""One bad upstream never hurts the others: each fault gives a clear error, a state change and an event,
while another server in the same Hangar keeps answering."""

from __future__ import annotations

import asyncio
import time

import pytest

from conftest import PYTHON, raw_server
from lifecycle_helpers import drain, gone, of, server_pid, state_to, text_of, wait_until
from mcp_hangar.errors import (
    McpServerStartError,
    UpstreamCrashedError,
    UpstreamProtocolError,
    UpstreamRpcError,
    UpstreamTimeoutError,
)
from mcp_hangar.events import (
    McpServerCrashed,
    McpServerStartFailed,
    ToolInvocationFailed,
)
from mcp_hangar.hangar import Hangar
from mcp_hangar.models import DeadReason, State

MISSING_COMMAND = "/nonexistent/mcp-server-that-is-not-installed"

# A minimal MCP server whose answers to initialize and tools/list take the given times, or that
# writes many stderr lines and exits when asked to initialize.
SLOW_SERVER = r"""
import json, os, sys, time
initialize_s, tools_list_s, exit_lines = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
for line in sys.stdin:
    msg = json.loads(line)
    method = msg.get("method")
    if method == "initialize" and exit_lines:
        for i in range(exit_lines):
            sys.stderr.write(f"traceback line {i}\n")
        sys.stderr.flush()
        os._exit(1)
    if method == "initialize":
        time.sleep(initialize_s)
        result = {"protocolVersion": "2025-11-25", "capabilities": {"tools": {}}, "serverInfo": {"name": "slow"}}
    elif method == "tools/list":
        time.sleep(tools_list_s)
        result = {"tools": []}
    else:
        continue
    print(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": result}), flush=True)
"""


def slow_server(
    initialize_s: float = 0, tools_list_s: float = 0, exit_with_lines: int = 0, **spec: object
) -> dict[str, object]:
    argv = [PYTHON, "-c", SLOW_SERVER, str(initialize_s), str(tools_list_s), str(exit_with_lines)]
    # It ignores methods it does not know (server/discover too), so the era probe is skipped.
    return {"mode": "subprocess", "command": argv, "protocol": "legacy", **spec}


async def fleet(hangar_factory, bad: dict[str, object]) -> Hangar:
    """A Hangar with the faulty server ``bad`` and a healthy ``good`` one, already answering."""
    hangar: Hangar = await hangar_factory({"bad": bad, "good": raw_server()})
    await hangar.start_server("good")
    return hangar


async def assert_good_answers(hangar: Hangar) -> None:
    result = await asyncio.wait_for(hangar.call_tool("good", "add", {"a": 2, "b": 3}), 2)
    assert result["structuredContent"] == {"result": 5}
    assert hangar.get("good").state == State.READY


# ---------------------------------------------------------------- faults during calls


async def test_crash_mid_call_fails_every_call_in_flight_within_a_second(hangar_factory) -> None:
    hangar = await fleet(hangar_factory, raw_server())
    pid = await server_pid(hangar, "bad")
    with hangar.bus.subscription() as sub, hangar.bus.subscription(predicate=of(ToolInvocationFailed)) as fails:
        slow = asyncio.create_task(hangar.call_tool("bad", "sleep", {"seconds": 30}))
        began = time.monotonic()
        with pytest.raises(UpstreamCrashedError, match="exit code 3"):
            await hangar.call_tool("bad", "crash")
        with pytest.raises(UpstreamCrashedError):
            await asyncio.wait_for(slow, 1)
        assert time.monotonic() - began < 1.0
        await sub.wait_for(state_to("bad", "dead", old_state="ready", dead_reason="crashed"), timeout=1)
        crashed = await sub.wait_for(of(McpServerCrashed, "bad"), timeout=1)
        failed = await drain(fails)
    assert isinstance(crashed, McpServerCrashed) and crashed.exit_code == 3
    assert hangar.get("bad").dead_reason == DeadReason.CRASHED
    outcomes = sorted(
        (e.mcp_server_id, e.tool_name, e.error_type) for e in failed if isinstance(e, ToolInvocationFailed)
    )
    assert outcomes == [("bad", "crash", "UpstreamCrashedError"), ("bad", "sleep", "UpstreamCrashedError")]
    await wait_until(lambda: gone(pid), 2, "the crashed process to be reaped")
    await assert_good_answers(hangar)


async def test_crash_publishes_a_failed_invocation(hangar_factory) -> None:
    hangar = await fleet(hangar_factory, raw_server())
    await hangar.start_server("bad")
    with hangar.bus.subscription(predicate=of(ToolInvocationFailed, "bad")) as sub:
        with pytest.raises(UpstreamCrashedError):
            await hangar.call_tool("bad", "crash")
        failed = await sub.get(timeout=1)
    assert isinstance(failed, ToolInvocationFailed)
    assert failed.tool_name == "crash" and failed.error_type == "UpstreamCrashedError"
    assert failed.duration_ms > 0 and failed.arguments_size_bytes == 0
    await assert_good_answers(hangar)


async def test_hang_past_call_timeout_degrades_while_others_answer(hangar_factory) -> None:
    hangar = await fleet(hangar_factory, raw_server(call_timeout_s=0.5, max_consecutive_failures=1))
    await hangar.start_server("bad")
    with hangar.bus.subscription() as sub:
        hang = asyncio.create_task(hangar.call_tool("bad", "hang"))
        await assert_good_answers(hangar)  # answered while the other call hangs
        assert not hang.done()
        with pytest.raises(UpstreamTimeoutError, match=r"0\.5 s"):
            await hang
        await sub.wait_for(state_to("bad", "degraded", old_state="ready"), timeout=1)
        failed = await sub.wait_for(of(ToolInvocationFailed, "bad"), timeout=1)
    assert isinstance(failed, ToolInvocationFailed)
    assert failed.error_type == "UpstreamTimeoutError" and failed.duration_ms >= 500
    assert hangar.get("bad").state == State.DEGRADED
    await assert_good_answers(hangar)


async def test_a_timeout_counts_as_one_consecutive_failure(hangar_factory) -> None:
    hangar = await fleet(hangar_factory, raw_server(call_timeout_s=0.3, max_consecutive_failures=3))
    await hangar.start_server("bad")
    with pytest.raises(UpstreamTimeoutError):
        await hangar.call_tool("bad", "hang")
    bad = hangar.get("bad")
    assert bad.consecutive_failures == 1 and bad.total_failures == 1
    assert bad.state == State.READY
    assert text_of(await hangar.call_tool("bad", "echo", {"text": "still here"})) == "still here"
    assert bad.consecutive_failures == 0


async def test_garbage_on_stdout_kills_the_server_and_an_explicit_start_revives_it(hangar_factory) -> None:
    hangar = await fleet(hangar_factory, raw_server())
    pid = await server_pid(hangar, "bad")
    with hangar.bus.subscription() as sub:
        with pytest.raises((UpstreamProtocolError, UpstreamCrashedError), match="not JSON"):
            await asyncio.wait_for(hangar.call_tool("bad", "garbage"), 2)
        await sub.wait_for(state_to("bad", "dead", dead_reason="crashed"), timeout=1)
        await sub.wait_for(of(McpServerCrashed, "bad"), timeout=1)
    await wait_until(lambda: gone(pid), 2, "the garbage-writing process to be killed")
    await assert_good_answers(hangar)
    await hangar.start_server("bad")
    assert hangar.get("bad").state == State.READY
    assert await server_pid(hangar, "bad") != pid


async def test_oversized_response_fails_that_call_only(hangar_factory) -> None:
    hangar = await fleet(hangar_factory, raw_server(max_response_bytes=4096))
    pid = await server_pid(hangar, "bad")
    with hangar.bus.subscription(predicate=of(ToolInvocationFailed, "bad")) as sub:
        with pytest.raises(UpstreamProtocolError, match="max_response_bytes"):
            await hangar.call_tool("bad", "big", {"bytes": 100_000})
        failed = await sub.get(timeout=1)
    assert isinstance(failed, ToolInvocationFailed) and failed.error_type == "UpstreamResponseTooLargeError"
    assert text_of(await hangar.call_tool("bad", "big", {"bytes": 1000})) == "x" * 1000
    assert await server_pid(hangar, "bad") == pid
    assert hangar.get("bad").state == State.READY
    await assert_good_answers(hangar)


async def test_an_upstream_rpc_error_is_not_a_health_failure(hangar_factory) -> None:
    hangar = await fleet(hangar_factory, raw_server(max_consecutive_failures=1))
    with pytest.raises(UpstreamRpcError, match="Unknown tool"):
        await hangar.call_tool("bad", "no_such_tool")
    assert hangar.get("bad").state == State.READY
    assert hangar.get("bad").consecutive_failures == 0
    await assert_good_answers(hangar)


# ---------------------------------------------------------------- faults during start


async def test_missing_command_is_a_start_error_naming_the_command(hangar_factory) -> None:
    hangar = await fleet(hangar_factory, {"mode": "subprocess", "command": [MISSING_COMMAND, "--flag"]})
    with hangar.bus.subscription() as sub:
        with pytest.raises(McpServerStartError, match=MISSING_COMMAND):
            await hangar.call_tool("bad", "echo", {"text": "x"})
        await sub.wait_for(state_to("bad", "dead", old_state="initializing", dead_reason="start_failed"), 1)
        failed = await sub.wait_for(of(McpServerStartFailed, "bad"), timeout=1)
    assert isinstance(failed, McpServerStartFailed) and MISSING_COMMAND in failed.message
    assert hangar.get("bad").dead_reason == DeadReason.START_FAILED
    await assert_good_answers(hangar)


async def test_exit_during_handshake_is_a_start_error(hangar_factory) -> None:
    hangar = await fleet(hangar_factory, raw_server("--exit-on-initialize"))
    with hangar.bus.subscription() as sub:
        with pytest.raises(McpServerStartError, match="exit code 1") as caught:
            await hangar.start_server("bad")
        await sub.wait_for(state_to("bad", "dead", dead_reason="start_failed"), timeout=1)
        await sub.wait_for(of(McpServerStartFailed, "bad"), timeout=1)
    assert caught.value.message.count("exit code") == 1
    assert hangar.get("bad").dead_reason == DeadReason.START_FAILED
    await assert_good_answers(hangar)


async def test_handshake_that_never_finishes_times_out(hangar_factory) -> None:
    hangar = await fleet(hangar_factory, raw_server("--hang-on-initialize", startup_timeout_s=1))
    began = time.monotonic()
    with hangar.bus.subscription() as sub:
        task = asyncio.create_task(hangar.start_server("bad"))
        await assert_good_answers(hangar)  # while the other one is still starting
        with pytest.raises(McpServerStartError, match=r"within 1 s"):
            await task
        await sub.wait_for(state_to("bad", "dead", dead_reason="start_failed"), timeout=1)
    assert time.monotonic() - began < 2.5
    assert hangar.get("bad").dead_reason == DeadReason.START_FAILED


async def test_failing_tools_list_during_start_is_a_start_error(hangar_factory) -> None:
    hangar = await fleet(hangar_factory, raw_server("--fail-tools-list-after", "0"))
    with pytest.raises(McpServerStartError, match="tools/list failure injected"):
        await hangar.start_server("bad")
    assert hangar.get("bad").state == State.DEAD
    assert hangar.get("bad").dead_reason == DeadReason.START_FAILED
    assert not hangar.get("bad").alive
    await assert_good_answers(hangar)


async def test_startup_timeout_bounds_the_handshake_and_tools_list_together(hangar_factory) -> None:
    # Each answer alone comes within the budget; both together do not.
    hangar = await fleet(hangar_factory, slow_server(initialize_s=0.6, tools_list_s=0.6, startup_timeout_s=1))
    began = time.monotonic()
    with pytest.raises(McpServerStartError, match=r"startup_timeout_s \(1 s\)"):
        await hangar.start_server("bad")
    assert time.monotonic() - began < 1.5
    assert hangar.get("bad").dead_reason == DeadReason.START_FAILED
    await assert_good_answers(hangar)


async def test_the_last_stderr_lines_of_a_server_dying_in_the_handshake_are_kept(hangar_factory) -> None:
    hangar = await fleet(hangar_factory, slow_server(initialize_s=0, exit_with_lines=3000))
    with pytest.raises(McpServerStartError):
        await hangar.start_server("bad")
    contents = [line.content for line in hangar.get("bad").logs]
    assert "traceback line 2999" in contents
