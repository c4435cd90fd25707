"""The event log in one SQLite file (WAL), ``events.db`` under the data directory."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import orjson

from .errors import StoreError
from .event_log import _COLUMNS, EventLog, Snapshot, StoredEvent, _Pending, _stored
from .events import EventBus
from .sqlite import SqliteAccess, connect_wal, insert_rows, transaction

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    global_position INTEGER PRIMARY KEY,
    stream_id TEXT NOT NULL,
    stream_version INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    event_id TEXT NOT NULL,
    occurred_at REAL NOT NULL,
    data TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS events_by_stream ON events (stream_id, stream_version);
CREATE INDEX IF NOT EXISTS events_by_id ON events (event_id);
CREATE TABLE IF NOT EXISTS streams (
    stream_id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshots (
    stream_id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    state_data TEXT NOT NULL,
    created_at REAL NOT NULL
);
"""


class SqliteEventLog(SqliteAccess, EventLog):
    """The event log in one SQLite file (WAL), with its own connection used from worker threads."""

    _label = "event log"

    def __init__(self, path: Path, bus: EventBus, **kwargs: Any) -> None:
        SqliteAccess.__init__(self)
        EventLog.__init__(self, bus, **kwargs)
        self.path = path

    async def _open_storage(self) -> tuple[int, dict[str, int]]:
        return await asyncio.to_thread(self._open_sync)

    def _open_sync(self) -> tuple[int, dict[str, int]]:
        # auto_vacuum before anything else, so a new file gets it: retention can then give space back.
        conn = connect_wal(self.path, SCHEMA, "event log", first=("PRAGMA auto_vacuum=INCREMENTAL",))
        try:
            last = conn.execute("SELECT MAX(global_position) FROM events").fetchone()[0] or 0
            versions = dict(conn.execute("SELECT stream_id, version FROM streams").fetchall())
            # The streams table is written in the same transaction as the events, but take the
            # larger of the two in case it is older than the rows (a version must never repeat).
            for stream, version in conn.execute(
                    "SELECT stream_id, MAX(stream_version) FROM events GROUP BY stream_id").fetchall():
                versions[stream] = max(version, versions.get(stream, 0))
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open the event log {self.path}: {exc}") from None
        self._conn = conn
        return int(last), versions

    async def _close_storage(self) -> None:
        await self._close_connection()

    async def _write(self, batch: list[_Pending]) -> None:
        def work(c: sqlite3.Connection) -> None:
            rows, last = self._batch_rows(batch)
            now = time.time()
            with transaction(c):
                insert_rows(c, f"INSERT OR REPLACE INTO events ({_COLUMNS})", 7, rows)
                c.executemany(
                    "INSERT INTO streams (stream_id, version, updated_at) VALUES (?, ?, ?) "
                    "ON CONFLICT(stream_id) DO UPDATE SET version = MAX(version, excluded.version), "
                    "updated_at = excluded.updated_at", [(s, v, now) for s, v in last.items()])
            self._fold_written(batch)

        await self._run(work)

    async def _serialized(self, fn: Callable[[], T]) -> T:
        return await self._run(lambda _: fn())

    async def read(self, after: int, up_to: int, limit: int = 500) -> list[StoredEvent]:
        rows = await self._run(lambda c: c.execute(
            f"SELECT {_COLUMNS} FROM events WHERE global_position > ? AND global_position <= ? "
            "ORDER BY global_position LIMIT ?", (after, up_to, limit)).fetchall())
        return [_stored(r) for r in rows]

    async def read_stream(self, stream_id: str, after_version: int = 0, limit: int = 500) -> list[StoredEvent]:
        # Parsed on the worker thread: folding reads whole streams, and the event loop need not wait.
        return await self._run(lambda c: [_stored(r) for r in c.execute(
            f"SELECT {_COLUMNS} FROM events WHERE stream_id = ? AND stream_version > ? "
            "ORDER BY stream_version LIMIT ?", (stream_id, after_version, limit)).fetchall()])

    async def position_of(self, event_id: str) -> int | None:
        row = await self._run(lambda c: c.execute(
            "SELECT global_position FROM events WHERE event_id = ?", (event_id,)).fetchone())
        return int(row[0]) if row else None

    async def position_before(self, timestamp: float) -> int:
        # Positions follow publish order and timestamps are taken just before publishing, so the
        # first event later than ``timestamp`` marks the boundary.
        row = await self._run(lambda c: c.execute(
            "SELECT MIN(global_position) FROM events WHERE occurred_at > ?", (timestamp,)).fetchone())
        if row is None or row[0] is None:
            return self.position
        return int(row[0]) - 1

    async def bounds(self) -> tuple[int, int, int]:
        row = await self._run(lambda c: c.execute(
            "SELECT MIN(global_position), MAX(global_position), COUNT(*) FROM events").fetchone())
        return (int(row[0] or 0), int(row[1] or 0), int(row[2] or 0))

    async def _save_snapshot(self, snapshot: Snapshot) -> None:
        await self._run(lambda c: c.execute(
            "INSERT INTO snapshots (stream_id, version, state_data, created_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(stream_id) DO UPDATE SET version = excluded.version, state_data = excluded.state_data, "
            "created_at = excluded.created_at WHERE excluded.version >= snapshots.version",
            (snapshot.stream_id, snapshot.version, orjson.dumps(snapshot.state, default=str).decode(),
             snapshot.created_at)))

    async def load_snapshot(self, stream_id: str) -> Snapshot | None:
        row = await self._run(lambda c: c.execute(
            "SELECT stream_id, version, state_data, created_at FROM snapshots WHERE stream_id = ?",
            (stream_id,)).fetchone())
        return Snapshot(row[0], int(row[1]), orjson.loads(row[2]), float(row[3])) if row else None

    async def snapshot_versions(self) -> dict[str, int]:
        rows = await self._run(lambda c: c.execute("SELECT stream_id, version FROM snapshots").fetchall())
        return {str(r[0]): int(r[1]) for r in rows}

    async def _delete_stream_events(self, stream_id: str, up_to_version: int) -> int:
        return await self._run(lambda c: c.execute(
            "DELETE FROM events WHERE stream_id = ? AND stream_version <= ?", (stream_id, up_to_version)).rowcount)

    async def _versions_below(self, position: int) -> dict[str, int]:
        rows = await self._run(lambda c: c.execute(
            "SELECT stream_id, MAX(stream_version) FROM events WHERE global_position < ? GROUP BY stream_id",
            (position,)).fetchall())
        return {str(r[0]): int(r[1]) for r in rows}

    async def _delete_below(self, position: int) -> int:
        return await self._run(lambda c: c.execute(
            "DELETE FROM events WHERE global_position < ?", (position,)).rowcount)

    async def _position_at(self, offset: int) -> int:
        row = await self._run(lambda c: c.execute(
            "SELECT global_position FROM events ORDER BY global_position LIMIT 1 OFFSET ?", (offset,)).fetchone())
        return int(row[0]) if row else self.position

    async def reclaim(self) -> None:
        def work(c: sqlite3.Connection) -> None:
            c.executescript("PRAGMA incremental_vacuum;")  # stepped to the end: every free page goes
            c.execute("PRAGMA wal_checkpoint(TRUNCATE)")

        await self._run(work)

    async def size_bytes(self) -> int:
        return await self._run(_used_bytes)


def _used_bytes(c: sqlite3.Connection) -> int:
    pages = c.execute("PRAGMA page_count").fetchone()[0]
    free = c.execute("PRAGMA freelist_count").fetchone()[0]
    size = c.execute("PRAGMA page_size").fetchone()[0]
    return int((pages - free) * size)
