"""The event log in PostgreSQL (``event_store: {driver: postgresql, dsn: ...}``), with psycopg 3.

The same tables as the SQLite backend, in the schema ``event_store.pg_schema`` (created when missing).
One connection (autocommit; a batch is one transaction) is used from worker threads under a lock, as the
SQLite backend does, so the event loop never waits on the network; a lost connection is opened again
and the operation retried once (events that could not be written wait in memory for the next flush).
Batches go in with ``COPY`` into a temporary table, then one ``INSERT ... ON CONFLICT``. One Hangar
instance writes a schema: positions are assigned in memory.

``size_bytes`` is the size of the stored rows (``pg_column_size``): deleted rows' space is reused by
the server after ``VACUUM``, which ``reclaim`` runs, but the table files rarely shrink.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import orjson

from .errors import StoreError
from .event_log import _COLUMNS, EventLog, Snapshot, StoredEvent, _Pending, _stored
from .events import EventBus

T = TypeVar("T")
log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    global_position BIGINT PRIMARY KEY,
    stream_id TEXT NOT NULL,
    stream_version BIGINT NOT NULL,
    event_type TEXT NOT NULL,
    event_id TEXT NOT NULL,
    occurred_at DOUBLE PRECISION NOT NULL,
    data TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS events_by_stream ON events (stream_id, stream_version);
CREATE INDEX IF NOT EXISTS events_by_id ON events (event_id);
CREATE INDEX IF NOT EXISTS events_by_time ON events (occurred_at);
CREATE TABLE IF NOT EXISTS streams (
    stream_id TEXT PRIMARY KEY,
    version BIGINT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshots (
    stream_id TEXT PRIMARY KEY,
    version BIGINT NOT NULL,
    state_data TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
"""


class PostgresEventLog(EventLog):
    """The event log in one PostgreSQL schema."""

    def __init__(self, dsn: str, bus: EventBus, *, schema: str = "public", **kwargs: Any) -> None:
        super().__init__(bus, **kwargs)
        self.dsn = dsn
        self.schema = schema
        self._conn: Any = None  # psycopg.Connection, imported lazily: the driver is an optional extra
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ connection

    async def _call(self, fn: Callable[[Any], T]) -> T:
        import psycopg

        def work() -> T:
            with self._lock:
                for attempt in (1, 2):
                    conn = self._conn
                    if conn is None:
                        raise StoreError("the event log is closed")
                    try:
                        return fn(conn)
                    except psycopg.Error as exc:
                        if attempt == 2 or not (conn.broken or conn.closed):
                            raise StoreError(f"event log error: {str(exc).strip()}") from None
                    # The connection was lost (a server restart, a failover, an idle timeout): connect again
                    # and run the operation once more. Every operation is idempotent (rows are keyed by
                    # position, versions only grow), so one that committed before the loss is harmless.
                    log.warning("the PostgreSQL event log lost its connection; reconnecting")
                    self._conn = None
                    with contextlib.suppress(psycopg.Error):
                        conn.close()
                    self._conn = self._connect()
            raise AssertionError("unreachable")

        return await asyncio.to_thread(work)

    def _connect(self) -> Any:
        """A connection with the schema on its search path and the batch table (``StoreError`` if none)."""
        import psycopg
        from psycopg import sql

        try:
            conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=10)
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
            conn.execute(SCHEMA)
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS incoming (LIKE events) ON COMMIT DELETE ROWS")
        except psycopg.Error as exc:
            raise StoreError(f"cannot open the event log in PostgreSQL (schema {self.schema}): "
                             f"{str(exc).strip()}") from None
        return conn

    async def _open_storage(self) -> tuple[int, dict[str, int]]:
        return await asyncio.to_thread(self._open_sync)

    def _open_sync(self) -> tuple[int, dict[str, int]]:
        try:
            import psycopg
        except ImportError:
            raise StoreError("event_store.driver postgresql needs psycopg: pip install 'mcp-hangar[postgres]'") \
                from None
        conn = self._connect()
        try:
            row = conn.execute("SELECT MAX(global_position) FROM events").fetchone()
            last = row[0] if row and row[0] is not None else 0
            versions = {str(s): int(v) for s, v in conn.execute("SELECT stream_id, version FROM streams")}
            # As in SQLite: the larger of the streams table and the rows, so a version never repeats.
            for stream, version in conn.execute("SELECT stream_id, MAX(stream_version) FROM events GROUP BY stream_id"):
                versions[stream] = max(int(version), versions.get(stream, 0))
        except psycopg.Error as exc:
            conn.close()
            raise StoreError(f"cannot open the event log in PostgreSQL (schema {self.schema}): "
                             f"{str(exc).strip()}") from None
        self._conn = conn
        return int(last), versions

    async def _close_storage(self) -> None:
        def work() -> None:
            with self._lock:
                conn, self._conn = self._conn, None
                if conn is not None:
                    conn.close()

        await asyncio.to_thread(work)

    # ------------------------------------------------------------------ writing and reading

    async def _write(self, batch: list[_Pending]) -> None:
        def work(c: Any) -> None:
            rows, last = self._batch_rows(batch)
            now = time.time()
            with c.transaction(), c.cursor() as cur:
                with cur.copy(f"COPY incoming ({_COLUMNS}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                cur.execute(f"INSERT INTO events ({_COLUMNS}) SELECT {_COLUMNS} FROM incoming "
                            "ON CONFLICT (global_position) DO NOTHING")
                cur.executemany(
                    "INSERT INTO streams (stream_id, version, updated_at) VALUES (%s, %s, %s) "
                    "ON CONFLICT (stream_id) DO UPDATE SET version = GREATEST(streams.version, excluded.version), "
                    "updated_at = excluded.updated_at", [(s, v, now) for s, v in last.items()])
            self._fold_written(batch)

        await self._call(work)

    async def _serialized(self, fn: Callable[[], T]) -> T:
        return await self._call(lambda _: fn())

    async def _rows(self, query: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        return await self._call(lambda c: c.execute(query, args).fetchall())

    async def _one(self, query: str, args: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
        return await self._call(lambda c: c.execute(query, args).fetchone())

    async def _count(self, query: str, args: tuple[Any, ...]) -> int:
        return await self._call(lambda c: int(c.execute(query, args).rowcount))

    async def read(self, after: int, up_to: int, limit: int = 500) -> list[StoredEvent]:
        rows = await self._rows(f"SELECT {_COLUMNS} FROM events WHERE global_position > %s AND global_position <= %s "
                                "ORDER BY global_position LIMIT %s", (after, up_to, limit))
        return [_stored(r) for r in rows]

    async def read_stream(self, stream_id: str, after_version: int = 0, limit: int = 500) -> list[StoredEvent]:
        return await self._call(lambda c: [_stored(r) for r in c.execute(
            f"SELECT {_COLUMNS} FROM events WHERE stream_id = %s AND stream_version > %s "
            "ORDER BY stream_version LIMIT %s", (stream_id, after_version, limit)).fetchall()])

    async def position_of(self, event_id: str) -> int | None:
        row = await self._one("SELECT global_position FROM events WHERE event_id = %s", (event_id,))
        return int(row[0]) if row else None

    async def position_before(self, timestamp: float) -> int:
        row = await self._one("SELECT MIN(global_position) FROM events WHERE occurred_at > %s", (timestamp,))
        if row is None or row[0] is None:
            return self.position
        return int(row[0]) - 1

    async def bounds(self) -> tuple[int, int, int]:
        row = await self._one("SELECT MIN(global_position), MAX(global_position), COUNT(*) FROM events")
        assert row is not None
        return (int(row[0] or 0), int(row[1] or 0), int(row[2] or 0))

    # ------------------------------------------------------------------ snapshots and deletion

    async def _save_snapshot(self, snapshot: Snapshot) -> None:
        await self._count(
            "INSERT INTO snapshots (stream_id, version, state_data, created_at) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, state_data = excluded.state_data, "
            "created_at = excluded.created_at WHERE excluded.version >= snapshots.version",
            (snapshot.stream_id, snapshot.version, orjson.dumps(snapshot.state, default=str).decode(),
             snapshot.created_at))

    async def load_snapshot(self, stream_id: str) -> Snapshot | None:
        row = await self._one("SELECT stream_id, version, state_data, created_at FROM snapshots WHERE stream_id = %s",
                              (stream_id,))
        return Snapshot(row[0], int(row[1]), orjson.loads(row[2]), float(row[3])) if row else None

    async def snapshot_versions(self) -> dict[str, int]:
        return {str(s): int(v) for s, v in await self._rows("SELECT stream_id, version FROM snapshots", ())}

    async def _delete_stream_events(self, stream_id: str, up_to_version: int) -> int:
        return await self._count("DELETE FROM events WHERE stream_id = %s AND stream_version <= %s",
                                 (stream_id, up_to_version))

    async def _versions_below(self, position: int) -> dict[str, int]:
        rows = await self._rows("SELECT stream_id, MAX(stream_version) FROM events WHERE global_position < %s "
                                "GROUP BY stream_id", (position,))
        return {str(s): int(v) for s, v in rows}

    async def _delete_below(self, position: int) -> int:
        return await self._count("DELETE FROM events WHERE global_position < %s", (position,))

    async def _position_at(self, offset: int) -> int:
        row = await self._one("SELECT global_position FROM events ORDER BY global_position LIMIT 1 OFFSET %s",
                              (offset,))
        return int(row[0]) if row else self.position

    async def reclaim(self) -> None:
        await self._call(lambda c: c.execute("VACUUM events"))

    async def size_bytes(self) -> int:
        row = await self._one("SELECT (SELECT COALESCE(SUM(pg_column_size(e.*)), 0) FROM events e) + "
                              "(SELECT COALESCE(SUM(pg_column_size(s.*)), 0) FROM snapshots s)")
        return int(row[0]) if row else 0
