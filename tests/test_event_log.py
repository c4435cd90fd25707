"""The durable event log: every bus event stored in order with a global position and a per-stream
version, bounded by its retention, readable after a restart; on SQLite and PostgreSQL (which skips when no
server answers)."""

from __future__ import annotations

import contextlib
import gc
import logging
import weakref
from pathlib import Path

import pytest

from mcp_hangar.event_log import WRITE_CHUNK, EventLog, stream_of
from mcp_hangar.events import (
    EventBus,
    GroupStateChanged,
    HealthCheckPassed,
    McpServerEvent,
    McpServerStateChanged,
    ToolInvocationCompleted,
    event_class,
)
from mcp_hangar.store import HistoryWriter, Store
from store_backends import LogFactory, WriteRefusal


def state(server: str, new: str = "ready") -> McpServerStateChanged:
    return McpServerStateChanged(mcp_server_id=server, old_state="cold", new_state=new)


async def opened(make_log: LogFactory, bus: EventBus | None = None, **kwargs: int) -> EventLog:
    log = make_log(bus or EventBus(), produced_by="test-1", **kwargs)
    await log.open()
    return log


async def test_every_event_gets_the_next_position_and_its_stream_version(make_log: LogFactory) -> None:
    bus = EventBus()
    log = await opened(make_log, bus)
    events = [state("a"), state("b"), HealthCheckPassed(mcp_server_id="a", duration_ms=1.0),
              GroupStateChanged(group_id="g", old_state="inactive", new_state="healthy", healthy_count=1)]
    for event in events:
        bus.publish(event)
    assert log.position == 4
    await log.flush()
    stored = await log.read(0, log.position)
    assert [s.position for s in stored] == [1, 2, 3, 4]
    assert [(s.stream_id, s.version) for s in stored] == [
        ("mcp_server:a", 1), ("mcp_server:b", 1), ("mcp_server:a", 2), ("mcp_server_group:g", 1)]
    assert stored[0].data == {**events[0].to_dict(), "produced_by": "test-1"}
    assert [s.event_id for s in await log.read_stream("mcp_server:a")] == [events[0].event_id, events[2].event_id]
    await log.close()


async def test_a_backlog_is_written_in_slices_and_every_event_is_kept(make_log: LogFactory) -> None:
    bus = EventBus()
    log = await opened(make_log, bus, max_events=10 * WRITE_CHUNK)
    sizes: list[int] = []
    write = log._write

    async def recording(batch: list) -> None:  # type: ignore[type-arg]
        sizes.append(len(batch))
        await write(batch)

    log._write = recording  # type: ignore[method-assign]
    total = 2 * WRITE_CHUNK + 7
    for i in range(total):
        bus.publish(state(f"s{i % 3}"))
    await log.flush()
    assert sizes == [WRITE_CHUNK, WRITE_CHUNK, 7]
    stored = await log.read(0, log.position, limit=total + 1)
    assert [s.position for s in stored] == list(range(1, total + 1))
    assert [s.version for s in stored if s.stream_id == "mcp_server:s0"] == list(range(1, (total + 2) // 3 + 1))
    await log.close()


async def test_events_waiting_for_the_disk_are_not_kept_alive_and_are_stored_whole(
        make_log: LogFactory, tmp_path: Path) -> None:
    # The rows are built as the events are published: an event is freed with its call, not with the
    # whole batch at the flush (thousands at once, a pause of the event loop). The history likewise.
    bus = EventBus()
    log = await opened(make_log, bus)
    store = Store(tmp_path / "hangar.db")
    await store.open()
    history = HistoryWriter(store, bus)
    event = ToolInvocationCompleted(mcp_server_id="a", tool_name="echo", correlation_id="c1", duration_ms=1.5,
                                    result_size_bytes=3, is_error=True)
    expected, event_id = {**event.to_dict(), "produced_by": "test-1"}, event.event_id
    alive = weakref.ref(event)
    bus.publish(event)
    del event
    gc.collect()
    assert alive() is None and log.position == 1
    await log.flush()
    await history.flush()
    [stored] = await log.read(0, 1)
    assert stored.data == expected and stored.event_id == event_id
    snapshot = await log.snapshot_stream("mcp_server:a")  # from the writer's running fold
    assert snapshot is not None and snapshot.state["tool_errors"] == 1 and snapshot.state["total_invocations"] == 1
    [(_, record)], total = await store.history("a", limit=10, before=None)
    assert total == 1 and record["outcome"] == "error" and record["event_id"] == event_id
    await history.close()
    await store.close()
    await log.close()


async def test_taps_see_each_event_with_its_position_as_it_is_published(make_log: LogFactory) -> None:
    bus = EventBus()
    log = await opened(make_log, bus)
    seen: list[tuple[int, str]] = []
    log.add_tap(lambda position, event: seen.append((position, event.event_id)))
    first, second = state("a"), state("a", "dead")
    bus.publish(first)
    bus.publish(second)
    assert seen == [(1, first.event_id), (2, second.event_id)]
    await log.close()


@event_class
class _OddPayload(McpServerEvent):
    """An event whose field holds what orjson refuses (test-only)."""

    payload: object


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text")


async def test_an_event_orjson_refuses_is_still_stored_in_order_and_tapped(make_log: LogFactory) -> None:
    bus = EventBus()
    log = await opened(make_log, bus)
    seen: list[int] = []
    log.add_tap(lambda position, event: seen.append(position))
    odd = _OddPayload(mcp_server_id="a", payload={1: "int key", "big": 2 ** 70, "nan": float("nan"),
                                                  "odd": _Unprintable(), "deep": [[[[1]]]], "set": {3}})
    bus.publish(state("a"))
    bus.publish(odd)
    bus.publish(state("a", "dead"))
    assert log.position == 3 and seen == [1, 2, 3]  # no gap in positions, the tap fed
    await log.flush()
    stored = await log.read(0, log.position)
    assert [(s.position, s.version) for s in stored] == [(1, 1), (2, 2), (3, 3)]
    assert stored[1].data == {"event_type": "_OddPayload", "event_id": odd.event_id,
                              "occurred_at": odd.occurred_at, "mcp_server_id": "a",
                              "payload": {"1": "int key", "big": str(2 ** 70), "nan": None,
                                          "odd": "<_Unprintable>", "deep": [[[[1]]]], "set": [3]},
                              "produced_by": "test-1"}
    assert log.dropped == 0
    await log.close()


async def test_positions_and_versions_continue_after_a_restart(make_log: LogFactory) -> None:
    bus = EventBus()
    log = await opened(make_log, bus)
    for _ in range(3):
        bus.publish(state("a"))
    await log.close()
    bus2 = EventBus()
    again = await opened(make_log, bus2)
    bus2.publish(state("a"))
    await again.flush()
    last = (await again.read(3, 4))[0]
    assert (last.position, last.stream_id, last.version) == (4, "mcp_server:a", 4)
    await again.close()


async def test_events_published_before_open_are_kept_in_order(make_log: LogFactory) -> None:
    bus = EventBus()
    log = make_log(bus)
    early = state("a")
    bus.publish(early)
    await log.open()
    bus.publish(state("b"))
    await log.flush()
    stored = await log.read(0, 10)
    assert stored[0].event_id == early.event_id
    assert [s.position for s in stored] == [1, 2]
    await log.close()


async def test_retention_keeps_the_newest_events_and_prunes_in_the_background(make_log: LogFactory) -> None:
    bus = EventBus()
    log = await opened(make_log, bus, max_events=100)
    for i in range(1000):
        bus.publish(ToolInvocationCompleted(mcp_server_id="a", tool_name="t", correlation_id=str(i),
                                            duration_ms=1.0, result_size_bytes=1))
        if i % 50 == 49:
            await log.flush()
    await log.flush()
    oldest, newest, count = await log.bounds()
    assert newest == 1000
    assert count <= 200  # pruned every max_events/10 writes (at least every 100), to the newest 100
    assert oldest >= 1000 - 200 + 1
    assert (await log.read(newest - 1, newest))[0].data["correlation_id"] == "999"
    await log.close()


async def test_event_ids_and_times_map_to_positions(make_log: LogFactory) -> None:
    bus = EventBus()
    log = await opened(make_log, bus)
    events = [McpServerStateChanged(mcp_server_id="a", old_state="cold", new_state="ready", occurred_at=100.0 + i)
              for i in range(5)]
    for event in events:
        bus.publish(event)
    await log.flush()
    assert await log.position_of(events[2].event_id) == 3
    assert await log.position_of("no-such-id") is None
    assert await log.position_before(102.0) == 3  # events at 103 and 104 come after
    assert await log.position_before(50.0) == 0
    assert await log.position_before(999.0) == log.position
    await log.close()


def test_streams_are_named_after_what_the_event_is_about() -> None:
    assert stream_of(state("math")) == "mcp_server:math"
    assert stream_of(GroupStateChanged(group_id="pool", old_state="a", new_state="b", healthy_count=0)) \
        == "mcp_server_group:pool"


async def test_hangar_writes_its_events_to_events_db_in_the_data_dir(hangar_factory, tmp_path: Path) -> None:
    from conftest import raw_server

    hangar = await hangar_factory({"s": raw_server()}, data_dir=tmp_path / "d")
    await hangar.start_server("s")
    await hangar.event_log.flush()
    assert (tmp_path / "d" / "events.db").exists()
    stored = await hangar.event_log.read(0, hangar.event_log.position)
    types = [s.event_type for s in stored]
    assert types[0] == "McpServerRegistered"
    assert "McpServerStarted" in types
    assert all(s.data["produced_by"] == hangar.instance_id for s in stored)


async def test_events_reach_the_disk_every_flush_interval_the_config_sets(hangar_factory, tmp_path: Path) -> None:
    """``event_store.flush_interval_ms``: a short interval writes on its own, a long one waits (both
    Hangars publish the same events at the same time; neither is flushed by hand)."""
    import asyncio
    import sqlite3

    from conftest import raw_server

    def stored(data_dir: Path) -> int:
        with contextlib.closing(sqlite3.connect(data_dir / "events.db")) as conn:
            return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])

    slow = await hangar_factory({"s": raw_server()}, data_dir=tmp_path / "slow",
                                extra={"event_store": {"flush_interval_ms": 60_000}})
    fast = await hangar_factory({"s": raw_server()}, data_dir=tmp_path / "fast",
                                extra={"event_store": {"flush_interval_ms": 50}})
    slow_before, fast_before = stored(tmp_path / "slow"), stored(tmp_path / "fast")  # what the start wrote
    await asyncio.gather(slow.start_server("s"), fast.start_server("s"))
    async with asyncio.timeout(20):
        while stored(tmp_path / "fast") <= fast_before:
            await asyncio.sleep(0.02)
    assert stored(tmp_path / "slow") == slow_before  # its next write is a minute away
    assert slow.event_log.position > slow_before
    await slow.event_log.flush()
    assert stored(tmp_path / "slow") == slow.event_log.position


def test_the_flush_interval_is_checked() -> None:
    from mcp_hangar.config import parse_config_text
    from mcp_hangar.errors import ConfigError

    cfg, _, _ = parse_config_text("mcp_servers: {}", "<test>")
    assert cfg.event_store.flush_interval_ms == 1000
    for bad in ("5", "120000", "soon"):
        with pytest.raises(ConfigError, match="flush_interval_ms"):
            parse_config_text(f"event_store: {{flush_interval_ms: {bad}}}", "<test>")


async def test_hangar_writes_its_events_to_postgresql_when_configured(hangar_factory, tmp_path: Path,
                                                                     pg_schema: tuple[str, str]) -> None:
    import psycopg
    from psycopg import sql

    from conftest import raw_server

    dsn, schema = pg_schema
    hangar = await hangar_factory({"s": raw_server()}, data_dir=tmp_path / "d",
                                  extra={"event_store": {"driver": "postgresql", "dsn": dsn, "pg_schema": schema}})
    await hangar.start_server("s")
    await hangar.event_log.flush()
    assert not (tmp_path / "d" / "events.db").exists()
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(sql.SQL("SELECT event_type FROM {}.events ORDER BY global_position").format(
            sql.Identifier(schema))).fetchall()
    assert rows[0][0] == "McpServerRegistered" and ("McpServerStarted",) in rows
    stored = await hangar.event_log.read(0, len(rows))
    assert [s.event_type for s in stored] == [r[0] for r in rows]


def test_the_postgresql_driver_needs_a_dsn_and_the_dsn_is_never_shown() -> None:
    import pytest

    from mcp_hangar.config import EventStoreSettings
    from mcp_hangar.config_state import sanitize

    with pytest.raises(ValueError, match="needs a dsn"):
        EventStoreSettings(driver="postgresql")
    doc = {"event_store": {"driver": "postgresql", "dsn": "postgresql://hangar:s3cret@db/hangar"}}
    assert sanitize(doc) == {"event_store": {"driver": "postgresql", "dsn": "***"}}


async def test_a_refused_write_loses_nothing_and_is_retried_at_the_next_flush(
        make_log: LogFactory, write_refusal: WriteRefusal) -> None:
    bus = EventBus()
    log = await opened(make_log, bus)
    bus.publish(state("a"))
    await log.flush()
    write_refusal.on()
    refused = [state("a", "dead"), state("b")]
    for event in refused:
        bus.publish(event)
    await log.flush()  # the database says no: the events stay in memory, in order
    later = state("c")
    bus.publish(later)
    await log.flush()
    assert [s.position for s in await log.read(0, log.position)] == [1]
    write_refusal.off()
    await log.flush()
    stored = await log.read(0, log.position)
    assert [(s.position, s.event_id) for s in stored] == [
        (1, stored[0].event_id), (2, refused[0].event_id), (3, refused[1].event_id), (4, later.event_id)]
    assert [s.version for s in stored if s.stream_id == "mcp_server:a"] == [1, 2]
    assert log.dropped == 0
    await log.close()


async def test_postgresql_reconnects_when_its_session_ends(pg_schema: tuple[str, str], tmp_path: Path,
                                                           request: pytest.FixtureRequest) -> None:
    from mcp_hangar.event_log_pg import PostgresEventLog

    dsn, schema = pg_schema
    bus = EventBus()
    log = PostgresEventLog(dsn, bus, schema=schema, produced_by="test-1")
    await log.open()
    bus.publish(state("a"))
    await log.flush()
    WriteRefusal("postgresql", tmp_path, request).end_session(log._conn.info.backend_pid)
    bus.publish(state("a", "dead"))
    await log.flush()  # the lost session is opened again and the batch written
    assert [(s.position, s.version) for s in await log.read(0, log.position)] == [(1, 1), (2, 2)]
    assert (await log.bounds())[2] == 2  # reads work on the new session too
    await log.close()


async def test_failed_writes_are_said_once_their_end_once_and_a_close_counts_what_is_left(
        make_log: LogFactory, write_refusal: WriteRefusal, caplog: pytest.LogCaptureFixture) -> None:
    bus = EventBus()
    log = await opened(make_log, bus)
    caplog.set_level(logging.DEBUG, logger="mcp_hangar.event_log")
    write_refusal.on()
    for _ in range(3):  # three refused flushes: one ERROR, the rest at DEBUG
        bus.publish(state("a"))
        await log.flush()
    said = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "mcp_hangar.event_log"]
    assert [level for level, _ in said] == [logging.ERROR, logging.DEBUG, logging.DEBUG]
    assert "could not write to the event log" in said[0][1] and "1 kept" in said[0][1]
    caplog.clear()
    write_refusal.off()
    await log.flush()
    assert [r.levelno for r in caplog.records if r.name == "mcp_hangar.event_log"] == [logging.WARNING]
    assert len(await log.read(0, log.position)) == 3
    write_refusal.on()
    bus.publish(state("b"))
    caplog.clear()
    await log.close()  # the last event cannot be written: said, not raised
    assert any("1 events could not be written to the event log before closing" in r.getMessage()
               for r in caplog.records)
