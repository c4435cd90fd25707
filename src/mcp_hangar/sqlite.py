"""One SQLite connection used from worker threads, shared by the state store and the event log.

Every statement runs on a worker thread (``asyncio.to_thread``) under one lock, so the event loop
never waits on the disk and a close never races a write that is still running."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from .errors import StoreError

T = TypeVar("T")


def connect_wal(path: Path, schema: str, label: str, *, synchronous: str = "NORMAL",
                first: Sequence[str] = ()) -> sqlite3.Connection:
    """Open (creating its folder) the SQLite database at ``path`` in WAL mode and apply ``schema``;
    ``first`` are pragmas that must precede everything else. Failures are a ``StoreError`` naming ``label``."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        for pragma in first:
            conn.execute(pragma)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.executescript(schema)
    except (sqlite3.Error, OSError) as exc:
        raise StoreError(f"cannot open the {label} {path}: {exc}") from None
    return conn


class SqliteAccess:
    """Mixin: ``_conn`` is opened by the subclass; ``_run`` and ``_close_connection`` use it safely."""

    _label = "database"

    def __init__(self) -> None:
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    async def _close_connection(self) -> None:
        def work() -> None:
            with self._lock:
                conn, self._conn = self._conn, None
                if conn is not None:
                    conn.close()

        await asyncio.to_thread(work)

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def work() -> T:
            with self._lock:
                conn = self._conn
                if conn is None:
                    raise StoreError(f"the {self._label} is closed")
                try:
                    return fn(conn)
                except sqlite3.Error as exc:
                    raise StoreError(f"{self._label} error: {exc}") from None

        return await asyncio.to_thread(work)


async def flush_loop(wake: asyncio.Event, interval: float, flush: Callable[[], Awaitable[None]]) -> None:
    """Run ``flush`` every ``interval`` seconds, or at once when ``wake`` is set; until cancelled."""
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), interval)
        wake.clear()
        await flush()


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One transaction on an autocommit connection: committed at the end, rolled back on any error, so
    a failed write never leaves the connection inside a transaction."""
    conn.execute("BEGIN")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


class WriteFailures:
    """Says once that a background writer's database refuses its rows (the rows are kept and retried at
    every flush), and once that it writes again; the failures in between go to DEBUG."""

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self.log = logger
        self.what = what
        self.since: float | None = None  # monotonic time of the first failed write, until one succeeds

    def failed(self, message: str, kept: int) -> None:
        if self.since is None:
            self.since = time.monotonic()
            self.log.error("could not write to the %s (%s); %d kept, retried at every flush", self.what,
                           message, kept)
        else:
            self.log.debug("the %s still refuses writes (%s); %d kept", self.what, message, kept)

    def succeeded(self) -> None:
        if self.since is not None:
            self.log.warning("the %s is written again (after %.1f s of failed writes)", self.what,
                             time.monotonic() - self.since)
            self.since = None


# Rows per multi-row INSERT, largest first: a batch is cut into these sizes, so the connection's
# statement cache holds a handful of statements whatever the batch size.
_STATEMENT_ROWS = (256, 64, 16, 4, 1)


def insert_rows(conn: sqlite3.Connection, head: str, width: int, rows: Sequence[Sequence[object]]) -> None:
    """``head`` (``INSERT ... (columns)``) with ``rows`` of ``width`` values, many rows per statement.

    ``executemany`` steps once per row, and the sqlite3 module lets go of the GIL around every step: a
    writer thread inserting thousands of rows a second then takes the GIL back thousands of times from
    the event loop, which pays for each hand-over (measured: most of the cost of the event log and the
    history under load). One statement of 256 rows is one step, one hand-over."""
    values = "(" + ",".join("?" * width) + ")"
    start, total = 0, len(rows)
    for size in _STATEMENT_ROWS:
        sql = f"{head} VALUES {','.join([values] * size)}"
        while total - start >= size:
            conn.execute(sql, list(itertools.chain.from_iterable(rows[start:start + size])))
            start += size
