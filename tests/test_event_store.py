"""The durable store's snapshots, compaction (and CompactionError) and retention by age and size, in real
SQLite and real PostgreSQL (each test runs on both; PostgreSQL skips when no server answers); the retention
policy also runs in the background of a started Hangar."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from mcp_hangar.config import EventStoreSettings
from mcp_hangar.errors import CompactionError, ValidationError
from mcp_hangar.event_log import EventLog
from mcp_hangar.event_retention import run_retention
from mcp_hangar.events import EventBus, McpServerStateChanged
from mcp_hangar.web.app import create_app
from store_backends import LogFactory


def state(server: str, at: float | None = None) -> McpServerStateChanged:
    extra = {} if at is None else {"occurred_at": at}
    return McpServerStateChanged(mcp_server_id=server, old_state="cold", new_state="ready", **extra)


async def opened(make_log: LogFactory, bus: EventBus) -> EventLog:
    log = make_log(bus, produced_by="test", max_events=10_000_000)
    await log.open()
    return log


async def test_compaction_removes_the_events_a_snapshot_stands_for(make_log: LogFactory) -> None:
    bus = EventBus()
    log = await opened(make_log, bus)
    for _ in range(10):
        bus.publish(state("a"))
        bus.publish(state("b"))
    snapshot = await log.save_snapshot("mcp_server:a", {"state": "ready", "starts": 6}, version=6)
    assert snapshot.version == 6
    assert await log.compact_stream("mcp_server:a") == 6
    assert [e.version for e in await log.read_stream("mcp_server:a")] == [7, 8, 9, 10]
    assert len(await log.read_stream("mcp_server:b")) == 10  # other streams are untouched
    loaded = await log.load_snapshot("mcp_server:a")
    assert loaded is not None and loaded.state == {"state": "ready", "starts": 6} and loaded.version == 6
    assert await log.compact_stream("mcp_server:a") == 0  # nothing more to remove
    await log.close()

    reopened = await opened(make_log, bus)  # versions continue after the compacted ones
    bus.publish(state("a"))
    await reopened.flush()
    assert [e.version for e in await reopened.read_stream("mcp_server:a")][-1] == 11
    assert (await reopened.load_snapshot("mcp_server:a")).version == 6  # type: ignore[union-attr]
    await reopened.close()


async def test_a_snapshot_defaults_to_the_last_version_and_an_older_one_never_replaces_it(make_log: LogFactory) -> None:
    bus = EventBus()
    log = await opened(make_log, bus)
    for _ in range(4):
        bus.publish(state("a"))  # not flushed yet: the snapshot writes them first
    assert (await log.save_snapshot("mcp_server:a", {"n": 4})).version == 4
    await log.save_snapshot("mcp_server:a", {"n": 2}, version=2)
    assert (await log.load_snapshot("mcp_server:a")).state == {"n": 4}  # type: ignore[union-attr]
    with pytest.raises(ValidationError):
        await log.save_snapshot("mcp_server:a", {}, version=5)
    with pytest.raises(ValidationError):
        await log.save_snapshot("mcp_server:nobody", {})
    assert await log.compact_stream("mcp_server:a") == 4
    await log.close()


async def test_compacting_a_stream_without_a_snapshot_raises_compaction_error(make_log: LogFactory) -> None:
    bus = EventBus()
    log = await opened(make_log, bus)
    bus.publish(state("a"))
    with pytest.raises(CompactionError) as raised:
        await log.compact_stream("mcp_server:a")
    assert raised.value.stream_id == "mcp_server:a" and "no snapshot" in raised.value.reason
    assert len(await log.read_stream("mcp_server:a")) == 1  # nothing was removed
    await log.close()


async def test_compaction_error_leaves_the_rest_api_as_a_500_in_the_envelope(hangar_factory: Any) -> None:
    hangar = await hangar_factory({})
    app = create_app(hangar, manage_lifecycle=False)

    @app.api.post("/test-only/compact/{stream_id}")
    async def compact(stream_id: str) -> dict[str, int]:
        return {"removed": await hangar.event_log.compact_stream(stream_id)}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        r = await client.post("/test-only/compact/hangar")
    assert r.status_code == 500
    assert r.json() == {"error": "CompactionError", "status_code": 500, "message":
                        "cannot compact stream 'hangar': it has no snapshot; save a snapshot before compacting"}


async def test_retention_by_age_removes_old_events_only(make_log: LogFactory) -> None:
    bus = EventBus()
    log = await opened(make_log, bus)
    old = time.time() - 3600
    for _ in range(50):
        bus.publish(state("a", at=old))
    for _ in range(20):
        bus.publish(state("a"))
    await log.flush()
    assert await log.apply_retention(max_age_s=600, max_size_bytes=None) == (50, 0)
    assert [e.version for e in await log.read_stream("mcp_server:a", limit=1000)] == list(range(51, 71))
    await log.close()


async def test_retention_by_size_keeps_the_newest_events_below_the_bound(make_log: LogFactory, backend: str,
                                                                       tmp_path: Path) -> None:
    bus = EventBus()
    path = tmp_path / "events.db"
    log = await opened(make_log, bus)
    for i in range(20_000):
        bus.publish(state(f"s{i % 50}"))
    await log.flush()
    before = await log.size_bytes()
    limit = before // 4
    _, by_size = await log.apply_retention(max_age_s=None, max_size_bytes=limit)
    assert by_size > 0
    assert await log.size_bytes() <= limit
    oldest, newest, count = await log.bounds()
    assert newest == 20_000 and count == newest - oldest + 1  # the newest kept, without gaps
    await log.close()
    if backend == "sqlite":
        assert path.stat().st_size <= limit * 1.5  # the file itself shrank (incremental vacuum)
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


async def test_one_retention_pass_also_compacts_snapshotted_streams(make_log: LogFactory) -> None:
    bus = EventBus()
    log = await opened(make_log, bus)
    for _ in range(5):
        bus.publish(state("a"))
    await log.save_snapshot("mcp_server:a", {"n": 5})
    outcome = await run_retention(log, EventStoreSettings())
    assert outcome.compacted == 5 and outcome.removed_by_age == 0 and outcome.size_bytes > 0
    await log.close()


async def test_the_retention_policy_runs_in_the_background(hangar_factory: Any, store_config: dict[str, Any]) -> None:
    hangar = await hangar_factory({}, extra={"event_store": {**store_config, "max_age_s": 600,
                                                             "retention_interval_s": 0.05}})
    old = time.time() - 3600
    for _ in range(30):
        hangar.bus.publish(state("ghost", at=old))
    await hangar.event_log.flush()
    assert len(await hangar.event_log.read_stream("mcp_server:ghost")) == 30
    deadline = time.monotonic() + 15
    while await hangar.event_log.read_stream("mcp_server:ghost"):
        assert time.monotonic() < deadline, "the background retention never removed the old events"
        await hangar.event_log.flush()
        import asyncio

        await asyncio.sleep(0.05)
