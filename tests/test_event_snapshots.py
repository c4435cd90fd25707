"""Snapshots made by the product: each stream's state folded from its events (``event_fold``), taken by the
retention pass once a stream has grown by ``snapshot_every_events``, folded before anything is deleted;
the state from snapshot + later events equals the state from the whole stream, compaction keeps the log
bounded, and a restart after compaction keeps each server's totals. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import raw_server
from mcp_hangar.config import EventStoreSettings
from mcp_hangar.errors import UpstreamRpcError
from mcp_hangar.event_fold import Running, fold_all, initial
from mcp_hangar.event_log import event_json, stream_of
from mcp_hangar.event_retention import run_retention
from mcp_hangar.events import (
    Event,
    EventBus,
    GroupCallRouted,
    GroupCircuitClosed,
    GroupCircuitOpened,
    GroupCreated,
    GroupDeleted,
    GroupMemberAdded,
    GroupMemberRemoved,
    GroupStateChanged,
    HealthCheckFailed,
    HealthCheckPassed,
    McpServerCrashed,
    McpServerDeregistered,
    McpServerRegistered,
    McpServerStarted,
    McpServerStartFailed,
    McpServerStateChanged,
    McpServerStopped,
    McpServerToolsChanged,
    ToolInvocationCompleted,
    ToolInvocationFailed,
    ToolInvocationRequested,
    new_id,
)
from store_backends import LogFactory, WriteRefusal

_words = st.sampled_from(["echo", "add", "x", "boom"])
_states = st.sampled_from(["cold", "initializing", "ready", "degraded", "dead"])


def server_events(sid: str) -> st.SearchStrategy[Event]:
    return st.one_of(
        st.builds(ToolInvocationCompleted, mcp_server_id=st.just(sid), tool_name=_words, correlation_id=_words,
                  duration_ms=st.floats(0, 1e4), result_size_bytes=st.integers(0, 10**6), is_error=st.booleans()),
        st.builds(ToolInvocationFailed, mcp_server_id=st.just(sid), tool_name=_words, correlation_id=_words,
                  duration_ms=st.floats(0, 1e4), error_type=_words, error_message=st.text(max_size=20)),
        st.builds(McpServerStateChanged, mcp_server_id=st.just(sid), old_state=_states, new_state=_states,
                  dead_reason=st.none() | _words),
        st.builds(McpServerRegistered, mcp_server_id=st.just(sid), mode=_words, source=_words),
        st.builds(McpServerDeregistered, mcp_server_id=st.just(sid), reason=_words),
        st.builds(McpServerStarted, mcp_server_id=st.just(sid), mode=_words, tools_count=st.integers(0, 99),
                  startup_duration_ms=st.floats(0, 1e4), pid=st.none() | st.integers(1, 10**6)),
        st.builds(McpServerStopped, mcp_server_id=st.just(sid), reason=_words),
        st.builds(McpServerStartFailed, mcp_server_id=st.just(sid), error_type=_words, message=_words),
        st.builds(McpServerCrashed, mcp_server_id=st.just(sid), exit_code=st.none() | st.integers(-9, 9),
                  message=_words),
        st.builds(McpServerToolsChanged, mcp_server_id=st.just(sid), tools_count=st.integers(0, 99)),
        st.builds(HealthCheckPassed, mcp_server_id=st.just(sid), duration_ms=st.floats(0, 1e3)),
        st.builds(HealthCheckFailed, mcp_server_id=st.just(sid), consecutive_failures=st.integers(0, 9),
                  error_message=_words),
    )


def invocation_events(sid: str) -> st.SearchStrategy[Event]:
    return st.one_of(
        st.builds(ToolInvocationRequested, mcp_server_id=st.just(sid), tool_name=_words, correlation_id=_words,
                  arguments_size_bytes=st.integers(0, 10**6)),
        st.builds(ToolInvocationCompleted, mcp_server_id=st.just(sid), tool_name=_words, correlation_id=_words,
                  duration_ms=st.floats(0, 1e4), result_size_bytes=st.integers(0, 10**6), is_error=st.booleans()),
    )


def group_events(gid: str) -> st.SearchStrategy[Event]:
    members = st.lists(_words, max_size=3)
    return st.one_of(
        st.builds(GroupCreated, group_id=st.just(gid), strategy=_words, source=_words, state=_states,
                  members=members),
        st.builds(GroupDeleted, group_id=st.just(gid)),
        st.builds(GroupMemberAdded, group_id=st.just(gid), member_id=_words, weight=st.integers(1, 9),
                  priority=st.integers(1, 9)),
        st.builds(GroupMemberRemoved, group_id=st.just(gid), member_id=_words),
        st.builds(GroupStateChanged, group_id=st.just(gid), old_state=_states, new_state=_states,
                  healthy_count=st.integers(0, 9)),
        st.builds(GroupCircuitOpened, group_id=st.just(gid), consecutive_failures=st.integers(0, 9),
                  reset_timeout_s=st.floats(0, 60)),
        st.builds(GroupCircuitClosed, group_id=st.just(gid), reason=_words),
        st.builds(GroupCallRouted, group_id=st.just(gid), member_id=_words, tool_name=_words,
                  attempt=st.integers(1, 3), outcome=st.sampled_from(["success", "error", "failure"])),
    )


def stored(event: Event) -> dict[str, Any]:
    """The event as the log stores it."""
    data: dict[str, Any] = orjson.loads(event_json(event, "test"))
    return data


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.tuples(st.just("mcp_server:a"), st.lists(server_events("a"), max_size=40)),
                 st.tuples(st.just("mcp_server_group:g"), st.lists(group_events("g"), max_size=40))),
       st.integers(0, 40))
def test_snapshot_then_tail_folds_to_the_state_of_the_full_stream(stream: tuple[str, list[Event]], cut: int) -> None:
    stream_id, events = stream
    data = [stored(e) for e in events]
    cut = min(cut, len(data))
    snapshot = orjson.loads(orjson.dumps(fold_all(stream_id, data[:cut])))  # what the store keeps
    assert fold_all(stream_id, data[cut:], snapshot) == fold_all(stream_id, data)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.tuples(st.just("mcp_server:a"), st.lists(server_events("a") | invocation_events("a"), max_size=40)),
                 st.tuples(st.just("mcp_server_group:g"), st.lists(group_events("g"), max_size=40))),
       st.integers(0, 40))
def test_the_writers_running_fold_from_the_events_equals_the_fold_of_their_json(
        stream: tuple[str, list[Event]], settle_at: int) -> None:
    stream_id, events = stream
    running = Running(stream_id, initial(stream_id), 0)
    for i, event in enumerate(events):
        running.add(type(event).__name__, event.occurred_at, getattr(event, "is_error", False) is True,
                    event_json(event, "test").decode())
        if i == settle_at:
            running.settle()
    assert running.settle() == fold_all(stream_id, [stored(e) for e in events])


# One stream per example: every example runs on the same storage, opened anew.
_examples = itertools.count()
_ops = st.lists(st.one_of(st.tuples(st.just("events"), st.lists(server_events("?"), min_size=1, max_size=15)),
                          st.tuples(st.sampled_from(["snapshot", "compact", "prune"]), st.just([]))),
                max_size=12)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_ops)
def test_the_store_gives_the_full_streams_state_whatever_was_snapshotted_compacted_or_pruned(
        make_log: LogFactory, ops: list[tuple[str, list[Event]]]) -> None:
    sid = f"p{next(_examples)}"
    stream_id = f"mcp_server:{sid}"

    async def run() -> None:
        bus = EventBus()
        log = make_log(bus, max_events=10_000_000)
        await log.open()
        published: list[dict[str, Any]] = []
        try:
            for op, events in ops:
                if op == "events":
                    for e in events:
                        real = dataclasses.replace(e, mcp_server_id=sid, event_id=new_id())
                        bus.publish(real)
                        published.append(stored(real))
                elif op == "snapshot":
                    await log.snapshot_stream(stream_id)
                elif op == "compact" and await log.load_snapshot(stream_id) is not None:
                    await log.compact_stream(stream_id)
                elif op == "prune":
                    await log.flush()
                    await log.retire_below(log.position + 1)  # everything so far goes, folded first
            await log.flush()
            state, _ = await log.stream_state(stream_id)
            assert state == fold_all(stream_id, published)
        finally:
            await log.close()

    asyncio.run(run())


def completed(sid: str, ok: bool = True) -> Event:
    if ok:
        return ToolInvocationCompleted(mcp_server_id=sid, tool_name="echo", correlation_id="c", duration_ms=1.0,
                                       result_size_bytes=10)
    return ToolInvocationFailed(mcp_server_id=sid, tool_name="echo", correlation_id="c", duration_ms=1.0,
                                error_type="UpstreamTimeoutError", error_message="late")


async def test_a_long_run_with_snapshots_and_compaction_keeps_the_log_bounded(make_log: LogFactory) -> None:
    bus = EventBus()
    log = make_log(bus, max_events=10_000_000)
    await log.open()
    policy = EventStoreSettings(snapshot_every_events=300)
    servers = [f"s{i}" for i in range(10)]
    counts: list[int] = []
    sizes: list[int] = []
    compacted = 0
    for round_ in range(40):
        for i in range(1000):
            bus.publish(completed(servers[i % 10], ok=(i + round_) % 7 != 0))
        outcome = await run_retention(log, policy)
        compacted += outcome.compacted
        counts.append((await log.bounds())[2])
        sizes.append(outcome.size_bytes)
    assert compacted >= 35_000  # 40,000 events went through, most of them compacted away
    assert log.compacted == compacted and log.snapshots_taken >= 10 * (40_000 // 10 // 300) - 10
    assert max(counts) <= 10 * 300 + 1000  # never more than a snapshot interval per stream, plus a round
    assert sizes[-1] <= sizes[4] * 1.5  # the log stopped growing after a few rounds
    total = sum(1 for r in range(40) for i in range(1000) if (i + r) % 7 == 0)
    failures = 0
    for sid in servers:
        state, _ = await log.stream_state(f"mcp_server:{sid}")
        assert state["total_invocations"] == 4000
        failures += state["total_failures"]
    assert failures == total
    await log.close()


async def test_pruning_to_max_events_folds_what_it_deletes(make_log: LogFactory) -> None:
    bus = EventBus()
    log = make_log(bus, max_events=100)
    await log.open()
    for i in range(1500):
        bus.publish(completed("a", ok=i % 3 != 0))
        if i % 150 == 149:
            await log.flush()
    await log.flush()
    assert (await log.bounds())[2] <= 200
    state, _ = await log.stream_state("mcp_server:a")
    assert (state["total_invocations"], state["total_failures"]) == (1500, 500)
    await log.close()


async def test_a_restart_after_compaction_keeps_every_servers_totals(hangar_factory: Any, tmp_path: Any,
                                                                    store_config: dict[str, Any]) -> None:
    servers = {"a": raw_server(), "b": raw_server()}
    extra = {"event_store": {**store_config, "retention_interval_s": 3600}}
    data = tmp_path / "data"
    hangar = await hangar_factory(servers, data, extra)
    for _ in range(8):
        await hangar.call_tool("a", "echo", {"text": "hi"})
    await hangar.call_tool("a", "fail", {})  # a tool error: an invocation, not a failure
    for _ in range(3):
        with contextlib.suppress(UpstreamRpcError):  # the upstream's JSON-RPC error: a failed invocation
            await hangar.call_tool("a", "no_such_tool", {})
    await hangar.call_tool("b", "echo", {"text": "hi"})
    assert (hangar.get("a").total_invocations, hangar.get("a").total_failures) == (12, 3)
    outcome = await run_retention(hangar.event_log, EventStoreSettings(snapshot_every_events=1))
    assert outcome.snapshots >= 2 and outcome.compacted > 0
    assert await hangar.event_log.read_stream("mcp_server:a") == []  # only the snapshot is left
    before = hangar.system_info()
    await hangar.aclose()

    again = await hangar_factory(servers, data, extra)
    a = again.get("a")
    assert (a.total_invocations, a.total_failures, again.get("b").total_invocations) == (12, 3, 1)
    assert a.last_failure_at is not None and a.last_success_at is not None
    after = again.system_info()
    assert (after["total_invocations"], after["total_failures"]) == (before["total_invocations"], 3) == (13, 3)
    await again.call_tool("a", "echo", {"text": "again"})
    await again.aclose()

    third = await hangar_factory(servers, data, extra)  # snapshot + the events after it
    assert (third.get("a").total_invocations, third.get("a").total_failures) == (13, 3)
    state, _ = await third.event_log.stream_state("mcp_server:a")
    assert state["tool_errors"] == 1 and state["last_error"]["tool_name"] == "no_such_tool"


def mixed(sid: str, i: int) -> Event:
    """The invocation events of the hot path, with now and then one of the rarer kinds."""
    if i % 50 == 7:
        return McpServerStateChanged(mcp_server_id=sid, old_state="ready", new_state="dead", dead_reason="x")
    if i % 50 == 21:
        return completed(sid, ok=False)
    if i % 2:
        return ToolInvocationRequested(mcp_server_id=sid, tool_name="echo", correlation_id=str(i),
                                       arguments_size_bytes=i)
    return ToolInvocationCompleted(mcp_server_id=sid, tool_name="echo", correlation_id=str(i), duration_ms=0.5,
                                   result_size_bytes=10, is_error=i % 6 == 0)


async def test_pruning_saves_the_writers_running_state_which_may_stand_for_later_events(
        make_log: LogFactory) -> None:
    bus = EventBus()
    log = make_log(bus, max_events=10_000_000)
    await log.open()
    published = []
    for i in range(300):
        event = mixed("a", i)
        bus.publish(event)
        published.append(stored(event))
    await log.flush()
    assert await log.retire_below(101) == 100
    snapshot = await log.load_snapshot("mcp_server:a")
    assert snapshot is not None and snapshot.version == 300  # the state the writer had: all it wrote
    assert snapshot.state == fold_all("mcp_server:a", published)
    assert len(await log.read_stream("mcp_server:a")) == 200  # the later events stay, the snapshot skips them
    state, last = await log.stream_state("mcp_server:a")
    assert (state, last) == (fold_all("mcp_server:a", published), 300)
    await log.close()

    log = make_log(bus, max_events=10_000_000)  # after a restart, seeded from the snapshot and the events kept
    await log.open()
    for i in range(300, 400):
        event = mixed("a", i)
        bus.publish(event)
        published.append(stored(event))
    await log.flush()
    assert await log.retire_below(351) == 250
    snapshot = await log.load_snapshot("mcp_server:a")
    assert snapshot is not None and snapshot.version == 400
    assert snapshot.state == fold_all("mcp_server:a", published)
    await log.close()


async def test_the_running_state_survives_failed_writes_and_restarts(
        make_log: LogFactory, write_refusal: WriteRefusal) -> None:
    published: dict[str, list[dict[str, Any]]] = {"mcp_server:a": [], "mcp_server:b": []}
    for run in range(3):
        bus = EventBus()
        log = make_log(bus, max_events=150)
        await log.open()
        for i in range(400):
            event = mixed("ab"[i % 2], i + 1000 * run)
            bus.publish(event)
            published[stream_of(event)].append(stored(event))
            if i == 200:
                write_refusal.on()
                await log.flush()  # refused: kept, then written and folded once the database accepts it
                write_refusal.off()
            if i % 40 == 39:
                await log.flush()  # prunes to max_events from time to time
        await log.flush()
        assert (await log.bounds())[2] <= 300 and log.dropped == 0
        for stream_id, events in published.items():
            state, _ = await log.stream_state(stream_id)
            assert state == fold_all(stream_id, events), (run, stream_id)
        await log.close()


async def test_a_snapshot_saved_by_hand_is_the_base_pruning_folds_onto(make_log: LogFactory) -> None:
    bus = EventBus()
    log = make_log(bus, max_events=10_000_000)
    await log.open()
    for i in range(20):
        bus.publish(mixed("a", i))
    await log.flush()
    base = {**fold_all("mcp_server:a", []), "total_invocations": 1000}
    await log.save_snapshot("mcp_server:a", base, version=10)
    later = [mixed("a", i) for i in range(20, 40)]
    for event in later:
        bus.publish(event)
    await log.flush()
    expected, _ = await log.stream_state("mcp_server:a")  # the hand-made base + the events after it
    calls = sum(1 for i in range(10, 40) if isinstance(mixed("a", i), (ToolInvocationCompleted, ToolInvocationFailed)))
    assert expected["total_invocations"] == 1000 + calls
    await log.retire_below(log.position + 1)
    assert await log.read_stream("mcp_server:a") == []
    assert (await log.stream_state("mcp_server:a"))[0] == expected
    await log.close()
