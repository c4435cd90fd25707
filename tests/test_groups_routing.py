"""Calls through a group, with real upstream processes: how each strategy spreads them, which failures are
retried on another member, and the MCP front serving a group's tools under one name."""

from __future__ import annotations

import asyncio
import math
import os
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from group_helpers import group, pool_server, served_by, spread, start_all
from mcp import Client

from conftest import loaded_config
from lifecycle_helpers import of, text_of
from mcp_hangar.errors import UpstreamCrashedError, UpstreamRpcError
from mcp_hangar.events import GroupCallRouted, McpServerStarted, McpServerStateChanged
from mcp_hangar.hangar import Hangar


async def _calls(hangar: Hangar, group_id: str, pids: dict[int, str], total: int, workers: int = 10) -> Counter[str]:
    """``total`` calls of ``pid`` through the group from ``workers`` concurrent clients."""
    counts: Counter[str] = Counter()
    remaining = iter(range(total))

    async def worker() -> None:
        for _ in remaining:
            counts[await served_by(hangar, group_id, pids)] += 1

    await asyncio.gather(*(worker() for _ in range(workers)))
    return counts


# ---------------------------------------------------------------- distribution


async def test_round_robin_spreads_1000_calls_over_4_members_evenly(hangar_factory: Any) -> None:
    members = [f"m{i}" for i in range(4)]
    hangar = await hangar_factory({m: pool_server() for m in members},
                                  extra={"groups": {"pool": group(*members, strategy="round_robin")}})
    pids = await start_all(hangar, *members)
    counts = await _calls(hangar, "pool", pids, 1000)
    print(f"\nround_robin 1000 calls over 4: {spread(counts, members)}")
    assert sum(counts.values()) == 1000
    assert max(counts.values()) - min(counts.values()) <= 1


async def test_weighted_round_robin_matches_3_to_1_within_2_percent(hangar_factory: Any) -> None:
    members = [{"member_id": "heavy", "weight": 3}, {"member_id": "light", "weight": 1}]
    hangar = await hangar_factory({"heavy": pool_server(), "light": pool_server()},
                                  extra={"groups": {"pool": group(*members, strategy="weighted_round_robin")}})
    pids = await start_all(hangar, "heavy", "light")
    counts = await _calls(hangar, "pool", pids, 1000)
    print(f"\nweighted_round_robin 3:1, 1000 calls: {spread(counts, ['heavy', 'light'])}")
    assert abs(counts["heavy"] / 1000 - 0.75) <= 0.02
    # Smooth: the light member is never starved for long (no run of more than 3 heavy picks).
    order = [await served_by(hangar, "pool", pids) for _ in range(40)]
    runs = "".join("h" if m == "heavy" else "l" for m in order)
    assert "hhhh" not in runs and "ll" not in runs


async def test_random_matches_3_to_1_within_a_statistical_bound(hangar_factory: Any) -> None:
    members = [{"member_id": "heavy", "weight": 3}, {"member_id": "light", "weight": 1}]
    hangar = await hangar_factory({"heavy": pool_server(), "light": pool_server()},
                                  extra={"groups": {"pool": group(*members, strategy="random")}})
    pids = await start_all(hangar, "heavy", "light")
    n, p = 1000, 0.75
    counts = await _calls(hangar, "pool", pids, n)
    sigma = math.sqrt(n * p * (1 - p))  # binomial: ~13.7 calls
    print(f"\nrandom 3:1, 1000 calls: {spread(counts, ['heavy', 'light'])} (expected 750 +- {5 * sigma:.0f})")
    assert abs(counts["heavy"] - n * p) <= 5 * sigma  # false alarm rate below 1e-6


async def test_priority_uses_tier_1_until_it_dies_then_tier_2_within_one_call(hangar_factory: Any) -> None:
    members = [{"member_id": "t1a", "priority": 1}, {"member_id": "t1b", "priority": 1},
               {"member_id": "t2", "priority": 2}]
    hangar = await hangar_factory(
        {m: pool_server("--idempotent") for m in ("t1a", "t1b", "t2")},
        extra={"groups": {"pool": group(*members, strategy="priority", retry={"max_attempts": 3},
                                        health={"check_interval_s": 0.1})}})
    pids = await start_all(hangar, "t1a", "t1b", "t2")
    counts = await _calls(hangar, "pool", pids, 100)
    assert spread(counts, ["t1a", "t1b", "t2"]) == {"t1a": 50, "t1b": 50, "t2": 0}
    with hangar.bus.subscription() as events:
        for sid in ("t1a", "t1b"):
            os.kill(hangar.get(sid).pid or 0, signal.SIGKILL)
        # The very next call is answered by tier 2, whether or not the deaths were noticed yet.
        assert await served_by(hangar, "pool", pids) == "t2"
        assert Counter(await _calls(hangar, "pool", pids, 20)) == Counter({"t2": 20})
        # Tier 1 comes back (restarted by the group after its backoff) and takes the calls again.
        restarted: set[str] = set()
        while restarted != {"t1a", "t1b"}:  # in either order
            started = await events.wait_for(of(McpServerStarted), timeout=10)
            restarted.add(started.mcp_server_id)  # type: ignore[attr-defined]
    pids = {s.pid or 0: s.server_id for s in hangar.list_servers()}
    back = await _calls(hangar, "pool", pids, 20)
    assert back["t2"] == 0 and back["t1a"] == back["t1b"] == 10


async def test_least_connections_steers_away_from_a_slow_member(hangar_factory: Any) -> None:
    hangar = await hangar_factory({"fast": pool_server(), "slow": pool_server("--call-delay", "0.2")},
                                  extra={"groups": {"pool": group("fast", "slow", strategy="least_connections")}})
    pids = await start_all(hangar, "fast", "slow")
    counts = await _calls(hangar, "pool", pids, 200, workers=8)
    print(f"\nleast_connections, 200 calls from 8 clients, slow member +0.2 s/call: {spread(counts, ['fast', 'slow'])}")
    assert counts["slow"] <= 0.1 * 200  # round robin would give it half


# ---------------------------------------------------------------- what is retried


async def test_a_refused_start_is_retried_on_another_member(hangar_factory: Any, tmp_path: Path) -> None:
    gate = tmp_path / "refuse"
    gate.touch()
    hangar = await hangar_factory({"bad": pool_server("--refuse-start", str(gate)), "good": pool_server()},
                                  extra={"groups": {"pool": group("bad", "good", auto_start=False)}})
    with hangar.bus.subscription(predicate=of(GroupCallRouted)) as routed:
        result = await hangar.call_tool("pool", "echo", {"text": "hi"})
        assert text_of(result) == "hi"
        first, second = await routed.get(timeout=1), await routed.get(timeout=1)
    assert (first.member_id, first.attempt, first.outcome) == ("bad", 1, "failure")  # type: ignore[attr-defined]
    assert (second.member_id, second.attempt, second.outcome) == ("good", 2, "success")  # type: ignore[attr-defined]
    assert hangar.groups.get("pool").member("bad").in_rotation is False  # type: ignore[union-attr]


async def test_a_non_idempotent_call_that_reached_a_dying_member_is_not_repeated(hangar_factory: Any) -> None:
    hangar = await hangar_factory({"a": pool_server(), "b": pool_server()},
                                  extra={"groups": {"pool": group("a", "b")}})
    await start_all(hangar, "a", "b")
    with hangar.bus.subscription(predicate=of(GroupCallRouted)) as routed:
        with pytest.raises(UpstreamCrashedError):
            await hangar.call_tool("pool", "crash", {})
        assert routed.pending() == 1  # one attempt: the tool may have run, so it is not run again
    result = await hangar.call_tool("pool", "echo", {"text": "b still serves"})
    assert text_of(result) == "b still serves"


async def test_an_idempotent_call_that_timed_out_is_retried_on_another_member(hangar_factory: Any) -> None:
    hangar = await hangar_factory(
        {"slow": pool_server("--idempotent", "--call-delay", "2", call_timeout_s=0.3),
         "fast": pool_server("--idempotent")},
        extra={"groups": {"pool": group("slow", "fast")}})
    pids = await start_all(hangar, "slow", "fast")
    assert await served_by(hangar, "pool", pids) == "fast"  # slow timed out first; fast answered
    assert hangar.groups.get("pool").member("slow").consecutive_failures == 1  # type: ignore[union-attr]


async def test_tool_errors_and_jsonrpc_errors_are_answers_not_failures(hangar_factory: Any) -> None:
    hangar = await hangar_factory({"a": pool_server("--idempotent"), "b": pool_server("--idempotent")},
                                  extra={"groups": {"pool": group("a", "b", health={"unhealthy_threshold": 1})}})
    await start_all(hangar, "a", "b")
    with hangar.bus.subscription(predicate=of(GroupCallRouted)) as routed:
        result = await hangar.call_tool("pool", "fail", {})
        assert result["isError"] is True and text_of(result) == "tool failed"
        with pytest.raises(UpstreamRpcError):
            await hangar.call_tool("pool", "no_such_tool", {})
        assert routed.pending() == 2  # one attempt each
    assert all(m.in_rotation for m in hangar.groups.get("pool").members)


async def test_auto_start_starts_members_at_boot_in_parallel(tmp_path: Path) -> None:
    members = ["p1", "p2", "p3"]
    cfg = loaded_config({m: pool_server("--startup-delay", "0.3") for m in members} | {"lazy": pool_server()},
                        {"groups": {"pool": group(*members), "cold": group("lazy", auto_start=False)}})
    hangar = Hangar(cfg, tmp_path / "data")
    starting: list[str] = []
    ready: list[str] = []
    with hangar.bus.subscription(predicate=of(McpServerStateChanged)) as events:  # before start: see every event
        await hangar.start()
        try:
            while len(ready) < 3:
                event = await events.get(timeout=10)
                assert isinstance(event, McpServerStateChanged)
                (starting if event.new_state == "initializing" else ready).append(event.mcp_server_id)
            # Every member began starting before the first one was ready: the starts overlapped.
            assert sorted(starting[:3]) == members and sorted(ready) == members
            assert hangar.get("lazy").state.value == "cold"  # its group has auto_start: false
        finally:
            await hangar.aclose()


# ---------------------------------------------------------------- the MCP front


async def test_mcp_client_calls_a_group_tool_load_balanced(http_factory: Any) -> None:
    members = ["llm-1", "llm-2", "llm-3"]
    hangar, base = await http_factory({m: pool_server() for m in members},
                                      extra={"groups": {"llm-pool": group(*members)}})
    pids = await start_all(hangar, *members)
    async with Client(f"{base}/mcp", mode="legacy") as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert {"llm-pool__echo", "llm-pool__pid", "hangar_group_list", "hangar_group_rebalance"} <= names
        assert not any(n.startswith("llm-1__") for n in names)  # members are collapsed into the group
        served = Counter()
        for _ in range(30):
            result = await client.call_tool("llm-pool__pid", {})
            served[pids[int(result.content[0].text)]] += 1  # type: ignore[union-attr]
        assert served == Counter({"llm-1": 10, "llm-2": 10, "llm-3": 10})
        batch = await client.call_tool("hangar_call", {"calls": [
            {"mcp_server": "llm-pool", "tool": "echo", "arguments": {"text": str(i)}} for i in range(6)]})
        assert batch.structured_content is not None and batch.structured_content["succeeded"] == 6
        listed = await client.call_tool("hangar_group_list", {})
        assert listed.structured_content is not None
        (view,) = listed.structured_content["groups"]
        assert view["group_id"] == "llm-pool" and view["state"] == "healthy" and view["total_members"] == 3
        rebalanced = await client.call_tool("hangar_group_rebalance", {"group": "llm-pool"})
        assert rebalanced.structured_content is not None
        assert rebalanced.structured_content["status"] == "rebalanced"
        missing = await client.call_tool("hangar_group_rebalance", {"group": "nope"})
        assert missing.is_error and missing.structured_content["error"] == "GroupNotFoundError"  # type: ignore[index]
