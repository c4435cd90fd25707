"""Member health, failover and the circuit breaker of a group, with real upstream processes."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from group_helpers import group, pool_server, start_all

from lifecycle_helpers import of, text_of
from mcp_hangar.errors import GroupCircuitOpenError, GroupUnavailableError, McpServerStartError
from mcp_hangar.events import (
    Event,
    GroupCallRouted,
    GroupCircuitClosed,
    GroupCircuitOpened,
    GroupEvent,
    GroupMemberHealthChanged,
    GroupStateChanged,
    HealthCheckPassed,
    McpServerStateChanged,
)
from mcp_hangar.hangar import Hangar


class Load:
    """Concurrent clients calling ``echo`` through a group until stopped; successes counted per member."""

    def __init__(self, hangar: Hangar, group_id: str, clients: int) -> None:
        self.hangar, self.group_id = hangar, group_id
        self.served: Counter[str] = Counter()
        self.retried: Counter[str] = Counter()
        self.failures: list[BaseException] = []
        self._goal: tuple[str | None, int, asyncio.Event] | None = None
        self._stop = asyncio.Event()
        hangar.bus.add_listener(self._on_event)
        self._tasks = [asyncio.create_task(self._client(i)) for i in range(clients)]

    def _on_event(self, event: Event) -> None:
        if isinstance(event, GroupCallRouted) and event.outcome == "failure":
            self.retried[event.member_id] += 1  # an attempt that failed and was tried on another member
        if isinstance(event, GroupCallRouted) and event.outcome == "success":
            self.served[event.member_id] += 1
            if self._goal is not None:
                member, target, reached = self._goal
                if (self.served[member] if member else sum(self.served.values())) >= target:
                    reached.set()

    async def _client(self, n: int) -> None:
        i = 0
        while not self._stop.is_set():
            i += 1
            try:
                result = await self.hangar.call_tool(self.group_id, "echo", {"text": f"{n}-{i}"})
                assert text_of(result) == f"{n}-{i}"
            except Exception as exc:
                self.failures.append(exc)

    async def until(self, served: int, member: str | None = None, timeout: float = 10) -> None:
        """Wait until ``served`` more calls succeeded (on ``member``, or on any)."""
        base = self.served[member] if member else sum(self.served.values())
        reached = asyncio.Event()
        self._goal = (member, base + served, reached)
        await asyncio.wait_for(reached.wait(), timeout)

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)
        self.hangar.bus.remove_listener(self._on_event)


async def _drain(sub: Any) -> list[Event]:
    """The events already queued on a subscription."""
    items = []
    while sub.pending():
        items.append(await sub.get(timeout=1))
    return items


def _story(events: list[Event], member: str) -> list[str]:
    """The member's deaths and starts, and the group's health and state changes, in order."""
    out = []
    for e in events:
        if isinstance(e, McpServerStateChanged) and e.mcp_server_id == member and e.new_state in ("dead", "ready"):
            out.append(f"{member} {e.new_state}")
        elif isinstance(e, GroupMemberHealthChanged):
            out.append(f"{e.member_id} {'in' if e.in_rotation else 'out'}")
        elif isinstance(e, GroupStateChanged):
            out.append(f"group {e.new_state}")
    return out


async def test_failover_under_load_loses_no_call_and_the_member_comes_back(hangar_factory: Any) -> None:
    members = ["m1", "m2", "m3"]
    hangar = await hangar_factory(
        {m: pool_server("--idempotent") for m in members},
        extra={"groups": {"pool": group(*members, min_healthy=3, retry={"max_attempts": 3},
                                        health={"check_interval_s": 0.2})}})
    await start_all(hangar, *members)
    pool = hangar.groups.get("pool")
    assert pool.state.value == "healthy"
    record: list[Event] = []
    hangar.bus.add_listener(lambda e: None if isinstance(e, GroupCallRouted) else record.append(e))
    with hangar.bus.subscription(predicate=of(GroupMemberHealthChanged, member_id="m2")) as m2_health:
        load = Load(hangar, "pool", clients=8)
        await load.until(300)
        killed_at = time.time()
        os.kill(hangar.get("m2").pid or 0, signal.SIGKILL)
        out = await m2_health.get(timeout=5)
        gap_ms = (out.occurred_at - killed_at) * 1000
        assert not out.in_rotation  # type: ignore[attr-defined]
        assert pool.state.value == "partial"  # min_healthy is 3
        during = load.served["m2"]
        await load.until(200)  # the others carry the load meanwhile
        assert load.served["m2"] == during  # nothing is routed to it while it is out
        back = await m2_health.get(timeout=10)  # restarted by the group once its backoff allows
        assert back.in_rotation  # type: ignore[attr-defined]
        await load.until(50, member="m2")  # it takes calls again
        await load.stop()
    print(f"\nfailover: SIGKILL -> out of rotation {gap_ms:.1f} ms; back in rotation after "
          f"{back.occurred_at - killed_at:.2f} s; calls served {dict(load.served)}; attempts retried elsewhere "
          f"{dict(load.retried)}; client calls failed {len(load.failures)}")
    assert load.failures == []
    assert gap_ms < 500
    assert pool.state.value == "healthy"
    story = _story(record, "m2")
    expected = ["m2 dead", "m2 out", "group partial", "m2 ready", "m2 in", "group healthy"]
    positions = [story.index(step) for step in expected]
    assert positions == sorted(positions), story


async def test_a_member_leaves_after_unhealthy_threshold_and_returns_after_healthy_threshold(
        hangar_factory: Any) -> None:
    hangar = await hangar_factory(
        {"flaky": pool_server("--call-delay", "1", call_timeout_s=0.2, max_consecutive_failures=100),
         "steady": pool_server()},
        extra={"groups": {"pool": group("flaky", "steady", health={
            "unhealthy_threshold": 2, "healthy_threshold": 2, "check_interval_s": 0.1})}})
    await start_all(hangar, "flaky", "steady")
    pool = hangar.groups.get("pool")
    with hangar.bus.subscription() as events:
        outcomes = []
        for _ in range(4):  # round robin: flaky, steady, flaky, steady
            try:
                await hangar.call_tool("pool", "echo", {"text": "x"})
                outcomes.append("ok")
            except Exception as exc:
                outcomes.append(type(exc).__name__)
        assert outcomes == ["UpstreamTimeoutError", "ok", "UpstreamTimeoutError", "ok"]  # not idempotent: no retry
        left = await events.wait_for(of(GroupMemberHealthChanged, member_id="flaky"), 1)
        assert left.in_rotation is False and "UpstreamTimeoutError" in left.reason  # type: ignore[attr-defined]
        for _ in range(5):
            assert text_of(await hangar.call_tool("pool", "echo", {"text": "y"})) == "y"  # only steady now
        # Out of rotation it gets health checks (tools/list is not slow); two passes bring it back.
        passes = 0
        while True:
            event = await events.get(timeout=5)
            if isinstance(event, HealthCheckPassed) and event.mcp_server_id == "flaky":
                passes += 1
            if isinstance(event, GroupMemberHealthChanged) and event.member_id == "flaky":
                assert event.in_rotation is True
                break
        assert passes == 2
    assert pool.member("flaky").in_rotation  # type: ignore[union-attr]


async def test_circuit_opens_fails_fast_half_opens_and_closes(hangar_factory: Any, tmp_path: Path) -> None:
    gate = tmp_path / "broken"
    gate.touch()  # while it exists, every member's process exits at start
    members = ["g1", "g2"]
    hangar = await hangar_factory(
        {m: pool_server("--refuse-start", str(gate)) for m in members},
        extra={"groups": {"pool": group(*members, auto_start=False, retry={"max_attempts": 2},
                                        circuit_breaker={"failure_threshold": 3, "reset_timeout_s": 30},
                                        health={"check_interval_s": 3600})}})
    pool = hangar.groups.get("pool")
    with hangar.bus.subscription() as events:
        with pytest.raises(McpServerStartError):  # both members tried, both refused to start
            await hangar.call_tool("pool", "echo", {"text": "x"})
        for _ in range(2):
            with pytest.raises(GroupUnavailableError, match="no member in rotation"):
                await hangar.call_tool("pool", "echo", {"text": "x"})
        opened = await events.wait_for(of(GroupCircuitOpened, consecutive_failures=3), 1)
        assert isinstance(opened, GroupEvent) and pool.state.value == "degraded" and pool.circuit.state == "open"
        await events.wait_for(of(GroupStateChanged, new_state="degraded"), 1)

        began = time.perf_counter()
        with pytest.raises(GroupCircuitOpenError, match="circuit is open") as refused:
            await hangar.call_tool("pool", "echo", {"text": "x"})
        fail_fast_ms = (time.perf_counter() - began) * 1000
        assert refused.value.status_code == 503 and fail_fast_ms < 20
        assert not any(isinstance(e, McpServerStateChanged) for e in await _drain(events))  # no member was touched

        # reset_timeout_s passes (the breaker's clock is moved, not waited for): one probe goes through,
        # the calls that arrive meanwhile are still refused. The members are still broken: it fails, reopens.
        real = time.monotonic
        pool.circuit.clock = lambda: real() + 31
        results = await asyncio.gather(*(hangar.call_tool("pool", "echo", {"text": "x"}) for _ in range(5)),
                                       return_exceptions=True)
        kinds = Counter(type(r).__name__ for r in results)
        assert kinds == Counter({"GroupCircuitOpenError": 4, "McpServerStartError": 1})
        assert pool.circuit.state == "open"
        with pytest.raises(GroupCircuitOpenError):
            await hangar.call_tool("pool", "echo", {"text": "x"})

        gate.unlink()  # the members are fixed
        pool.circuit.clock = lambda: real() + 62
        results = await asyncio.gather(*(hangar.call_tool("pool", "echo", {"text": str(i)}) for i in range(5)),
                                       return_exceptions=True)
        ok = [r for r in results if isinstance(r, dict)]
        refused_now = [r for r in results if isinstance(r, GroupCircuitOpenError)]
        assert len(ok) == 1 and len(refused_now) == 4  # only the probe went through
        closed = await events.wait_for(of(GroupCircuitClosed), 1)
        assert closed.reason in ("recovered", "probe_succeeded")  # type: ignore[attr-defined]
        assert pool.circuit.state == "closed" and pool.state.value == "healthy"
        assert text_of(await hangar.call_tool("pool", "echo", {"text": "back"})) == "back"
        assert not any(isinstance(e, GroupCircuitClosed) for e in await _drain(events))  # closed once


async def test_circuit_closes_when_min_healthy_members_come_back_on_their_own(
        hangar_factory: Any, tmp_path: Path) -> None:
    gate = tmp_path / "broken"
    gate.touch()
    hangar = await hangar_factory(
        {"g1": pool_server("--refuse-start", str(gate))},
        extra={"groups": {"pool": group("g1", auto_start=False, circuit_breaker={"failure_threshold": 1},
                                        health={"check_interval_s": 0.1})}})
    with hangar.bus.subscription() as events:
        with pytest.raises(McpServerStartError):
            await hangar.call_tool("pool", "echo", {"text": "x"})
        await events.wait_for(of(GroupCircuitOpened), 1)
        gate.unlink()
        # The group restarts its dead member once the member's backoff allows; the circuit then closes.
        closed = await events.wait_for(of(GroupCircuitClosed), 10)
    assert closed.reason == "recovered"  # type: ignore[attr-defined]
    assert hangar.get("g1").state.value == "ready"
    assert text_of(await hangar.call_tool("pool", "echo", {"text": "ok"})) == "ok"


async def test_rebalance_readmits_recovered_members_and_resets_the_circuit(hangar_factory: Any) -> None:
    hangar = await hangar_factory(
        {"a": pool_server("--call-delay", "1", call_timeout_s=0.2, max_consecutive_failures=100)},
        extra={"groups": {"pool": group("a", health={"unhealthy_threshold": 1, "check_interval_s": 3600},
                                        circuit_breaker={"failure_threshold": 2})}})
    await start_all(hangar, "a")
    pool = hangar.groups.get("pool")
    for kind in ("UpstreamTimeoutError", "GroupUnavailableError"):
        with pytest.raises(Exception) as info:
            await hangar.call_tool("pool", "echo", {"text": "x"})
        assert type(info.value).__name__ == kind
    assert pool.circuit.state == "open" and not pool.member("a").in_rotation  # type: ignore[union-attr]
    with hangar.bus.subscription(predicate=of(GroupCircuitClosed)) as closed:
        await hangar.groups.rebalance("pool")
        assert (await closed.get(timeout=1)).reason == "rebalance"  # type: ignore[attr-defined]
    assert pool.circuit.state == "closed" and pool.member("a").in_rotation  # type: ignore[union-attr]
    assert pool.state.value == "healthy"
