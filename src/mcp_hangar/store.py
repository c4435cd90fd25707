"""Durable state in SQLite under the data directory: REST-created servers, remembered tool lists, and
the tool-invocation history.

Every call runs on a worker thread (``asyncio.to_thread``) with one connection guarded by a lock, so
the event loop never waits on the disk. Invocation records are written in batches by
``HistoryWriter``, off the call path.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from pathlib import Path
from typing import Any, TypeVar, cast

import orjson

from .errors import StoreError
from .events import Event, EventBus, ToolInvocationCompleted, ToolInvocationFailed
from .sqlite import SqliteAccess, WriteFailures, connect_wal, flush_loop, insert_rows, transaction

log = logging.getLogger(__name__)
T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS servers (
    server_id TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS tool_cache (
    server_id TEXT PRIMARY KEY,
    tools TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS invocations (
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    server_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    tool_name TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    occurred_at REAL NOT NULL,
    outcome TEXT NOT NULL,
    duration_ms REAL NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS invocations_by_server ON invocations (server_id, position);
"""


class Store(SqliteAccess):
    _label = "state database"

    """SQLite-backed store. Open with ``open()``; all async methods are safe to call concurrently."""

    def __init__(self, path: Path, history_retention: int = 10_000) -> None:
        self.path = path
        self.history_retention = history_retention
        super().__init__()

    async def open(self) -> None:
        await asyncio.to_thread(self._open_sync)

    def _open_sync(self) -> None:
        self._conn = connect_wal(self.path, SCHEMA, "state database")

    async def close(self) -> None:
        await self._close_connection()

    async def healthy(self) -> bool:
        try:
            await self._run(lambda c: c.execute("SELECT 1").fetchone())
        except StoreError:
            return False
        return True

    # ------------------------------------------------------------------ servers

    # Specs use the standard json module: they are rare writes, and free-form fields (resources, auth,
    # tool schemas) may hold integers beyond 64 bits, which orjson refuses and would read back as floats.

    async def load_servers(self) -> dict[str, dict[str, Any]]:
        rows = await self._run(lambda c: c.execute("SELECT server_id, spec FROM servers").fetchall())
        out: dict[str, dict[str, Any]] = {}
        for sid, spec in rows:
            try:
                out[sid] = json.loads(spec)
            except ValueError:
                log.error("saved server %r is unreadable and was skipped", sid)
        return out

    async def save_server(self, server_id: str, spec: dict[str, Any]) -> None:
        now = time.time()
        data = json.dumps(spec, separators=(",", ":"))
        await self._run(lambda c: c.execute(
            "INSERT INTO servers (server_id, spec, created_at, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(server_id) DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at",
            (server_id, data, now, now)))

    async def delete_server(self, server_id: str) -> None:
        def work(c: sqlite3.Connection) -> None:
            c.execute("DELETE FROM servers WHERE server_id = ?", (server_id,))
            c.execute("DELETE FROM tool_cache WHERE server_id = ?", (server_id,))

        await self._run(work)

    # ------------------------------------------------------------------ tools

    async def load_tool_cache(self) -> dict[str, list[dict[str, Any]]]:
        rows = await self._run(lambda c: c.execute("SELECT server_id, tools FROM tool_cache").fetchall())
        return {sid: orjson.loads(tools) for sid, tools in rows}

    async def save_tools(self, server_id: str, tools: list[dict[str, Any]]) -> None:
        data = orjson.dumps(tools).decode()
        await self._run(lambda c: c.execute(
            "INSERT INTO tool_cache (server_id, tools, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT(server_id) DO UPDATE SET tools = excluded.tools, updated_at = excluded.updated_at",
            (server_id, data, time.time())))

    # ------------------------------------------------------------------ history

    async def append_invocations(self, rows: list[InvocationRow]) -> None:
        """Write invocation records (``invocation_row``) and apply the per-server retention."""
        keep = self.history_retention

        def work(c: sqlite3.Connection) -> None:
            if not rows:
                return
            servers = {r[0] for r in rows}
            with transaction(c):
                insert_rows(c, "INSERT INTO invocations (server_id, event_id, event_type, tool_name, "
                               "correlation_id, occurred_at, outcome, duration_ms, data)", 9, rows)
                for sid in servers:  # retention: keep the newest `keep` records per server
                    c.execute(
                        "DELETE FROM invocations WHERE server_id = ? AND position <= "
                        "(SELECT position FROM invocations WHERE server_id = ? ORDER BY position DESC "
                        "LIMIT 1 OFFSET ?)", (sid, sid, keep))

        await self._run(work)

    async def history(
        self, server_id: str, *, limit: int, before: int | None, tool: str | None = None,
        outcome: str | None = None, since: float | None = None, until: float | None = None,
    ) -> tuple[list[tuple[int, dict[str, Any]]], int]:
        """Newest first. Returns ((position, record) rows, total matching records)."""
        where = ["server_id = ?"]
        args: list[Any] = [server_id]
        for clause, value in (("tool_name = ?", tool), ("outcome = ?", outcome),
                              ("occurred_at >= ?", since), ("occurred_at <= ?", until)):
            if value is not None:
                where.append(clause)
                args.append(value)
        cond = " AND ".join(where)

        def work(c: sqlite3.Connection) -> tuple[list[tuple[int, dict[str, Any]]], int]:
            total = c.execute(f"SELECT COUNT(*) FROM invocations WHERE {cond}", args).fetchone()[0]
            page_cond, page_args = cond, list(args)
            if before is not None:
                page_cond += " AND position < ?"
                page_args.append(before)
            rows = c.execute(
                f"SELECT position, data, outcome FROM invocations WHERE {page_cond} "
                f"ORDER BY position DESC LIMIT ?", [*page_args, limit]).fetchall()
            out = []
            for position, data, out_come in rows:
                record = orjson.loads(data)
                record["outcome"] = out_come
                out.append((position, record))
            return out, total

        return await self._run(work)

    # ------------------------------------------------------------------ groups

    # The table is created on first use, so that it needs no change to the shared schema above.
    _GROUPS_TABLE = (
        "CREATE TABLE IF NOT EXISTS groups (group_id TEXT PRIMARY KEY, spec TEXT NOT NULL, "
        "created_at REAL NOT NULL, updated_at REAL NOT NULL)"
    )

    async def load_groups(self) -> dict[str, dict[str, Any]]:
        """Groups created through REST, with their members."""

        def work(c: sqlite3.Connection) -> list[tuple[str, str]]:
            c.execute(self._GROUPS_TABLE)
            return c.execute("SELECT group_id, spec FROM groups ORDER BY created_at").fetchall()

        out: dict[str, dict[str, Any]] = {}
        for gid, spec in await self._run(work):
            try:
                out[gid] = json.loads(spec)
            except ValueError:
                log.error("saved group %r is unreadable and was skipped", gid)
        return out

    async def save_group(self, group_id: str, spec: dict[str, Any]) -> None:
        now = time.time()
        data = json.dumps(spec, separators=(",", ":"))

        def work(c: sqlite3.Connection) -> None:
            c.execute(self._GROUPS_TABLE)
            c.execute(
                "INSERT INTO groups (group_id, spec, created_at, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(group_id) DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at",
                (group_id, data, now, now))

        await self._run(work)

    async def delete_group(self, group_id: str) -> None:
        def work(c: sqlite3.Connection) -> None:
            c.execute(self._GROUPS_TABLE)
            c.execute("DELETE FROM groups WHERE group_id = ?", (group_id,))

        await self._run(work)

    # ------------------------------------------------------------------ discovery

    # Proposals and decisions (pending, quarantined, approved, rejected) by server name, and the sources
    # registered through REST. Created on first use, like the groups table.
    _DISCOVERY_TABLES = (
        "CREATE TABLE IF NOT EXISTS discovery_records (name TEXT PRIMARY KEY, data TEXT NOT NULL, "
        "updated_at REAL NOT NULL)",
        "CREATE TABLE IF NOT EXISTS discovery_sources (source_id TEXT PRIMARY KEY, spec TEXT NOT NULL, "
        "created_at REAL NOT NULL, updated_at REAL NOT NULL)",
    )

    def _discovery_tables(self, c: sqlite3.Connection) -> None:
        for ddl in self._DISCOVERY_TABLES:
            c.execute(ddl)

    async def load_discovery_records(self) -> list[dict[str, Any]]:
        def work(c: sqlite3.Connection) -> list[tuple[str, str]]:
            self._discovery_tables(c)
            return c.execute("SELECT name, data FROM discovery_records ORDER BY name").fetchall()

        out = []
        for name, data in await self._run(work):
            try:
                out.append(json.loads(data))
            except ValueError:
                log.error("saved discovery record %r is unreadable and was skipped", name)
        return out

    async def save_discovery_record(self, name: str, data: dict[str, Any]) -> None:
        text = json.dumps(data, separators=(",", ":"))

        def work(c: sqlite3.Connection) -> None:
            self._discovery_tables(c)
            c.execute("INSERT INTO discovery_records (name, data, updated_at) VALUES (?, ?, ?) "
                      "ON CONFLICT(name) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at",
                      (name, text, time.time()))

        await self._run(work)

    async def delete_discovery_record(self, name: str) -> None:
        def work(c: sqlite3.Connection) -> None:
            self._discovery_tables(c)
            c.execute("DELETE FROM discovery_records WHERE name = ?", (name,))

        await self._run(work)

    async def load_discovery_sources(self) -> dict[str, dict[str, Any]]:
        def work(c: sqlite3.Connection) -> list[tuple[str, str]]:
            self._discovery_tables(c)
            return c.execute("SELECT source_id, spec FROM discovery_sources ORDER BY created_at").fetchall()

        out: dict[str, dict[str, Any]] = {}
        for sid, spec in await self._run(work):
            try:
                out[sid] = json.loads(spec)
            except ValueError:
                log.error("saved discovery source %r is unreadable and was skipped", sid)
        return out

    async def save_discovery_source(self, source_id: str, spec: dict[str, Any]) -> None:
        now = time.time()
        text = json.dumps(spec, separators=(",", ":"))

        def work(c: sqlite3.Connection) -> None:
            self._discovery_tables(c)
            c.execute("INSERT INTO discovery_sources (source_id, spec, created_at, updated_at) VALUES (?, ?, ?, ?) "
                      "ON CONFLICT(source_id) DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at",
                      (source_id, text, now, now))

        await self._run(work)

    async def delete_discovery_source(self, source_id: str) -> None:
        def work(c: sqlite3.Connection) -> None:
            self._discovery_tables(c)
            c.execute("DELETE FROM discovery_sources WHERE source_id = ?", (source_id,))

        await self._run(work)


# (server id, event id, event type, tool name, correlation id, occurred at, outcome, duration ms, JSON)
InvocationRow = tuple[str, str, str, str, str, float, str, float, str]


def invocation_row(e: ToolInvocationCompleted | ToolInvocationFailed) -> InvocationRow:
    """The history's record of an invocation outcome."""
    outcome = "failure" if isinstance(e, ToolInvocationFailed) else ("error" if e.is_error else "success")
    return (e.mcp_server_id, e.event_id, e.__class__.__name__, e.tool_name, e.correlation_id, e.occurred_at,
            outcome, e.duration_ms, e.to_json().decode())


HISTORY_CHUNK = 5_000  # invocation records per write (one transaction)
HISTORY_MAX_PENDING = 200_000  # records waiting for a database that refuses them; beyond, the oldest go


class HistoryWriter:
    """Collects invocation events from the bus and writes them in batches. Each record is built as the
    event is published (a microsecond) and keeps no event, so the writer's thread only binds and steps
    its statements (see ``event_log``)."""

    def __init__(self, store: Store, bus: EventBus, interval: float = 0.25, batch: int = 2000) -> None:
        # A flush when ``batch`` records wait, else every ``interval``: under load each flush costs the
        # event loop a few hand-overs of the GIL, so they come as seldom as the event log's (2,000 rows).
        self._store = store
        self._bus = bus
        self._interval = interval
        self._batch = batch
        self._buffer: list[InvocationRow] = []
        self._wake = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._failures = WriteFailures(log, "invocation history")
        self.dropped = 0  # records never written because the database refused them too long
        bus.add_listener(self._on_event, (ToolInvocationCompleted, ToolInvocationFailed))

    def _on_event(self, event: Event) -> None:
        # Only invocation outcomes reach it (the listener's types): no check per call.
        self._buffer.append(invocation_row(cast("ToolInvocationCompleted | ToolInvocationFailed", event)))
        if len(self._buffer) >= self._batch:
            self._wake.set()

    async def flush(self) -> None:
        async with self._flush_lock:
            batch, self._buffer = self._buffer, []
            # A backlog is written in slices, so its rows are never all built at once.
            for start in range(0, len(batch), HISTORY_CHUNK):
                try:
                    await self._store.append_invocations(batch[start:start + HISTORY_CHUNK])
                except StoreError as exc:
                    # Kept, in order, for the next flush; beyond the bound the oldest are not written.
                    kept = batch[start:] + self._buffer
                    self.dropped += max(0, len(kept) - HISTORY_MAX_PENDING)
                    self._buffer = kept[-HISTORY_MAX_PENDING:]
                    self._failures.failed(exc.message, len(self._buffer))
                    return
            self._failures.succeeded()

    async def run(self) -> None:
        """Flush periodically until cancelled; the final flush happens in ``close``."""
        await flush_loop(self._wake, self._interval, self.flush)

    async def close(self) -> None:
        self._bus.remove_listener(self._on_event)
        await self.flush()
