"""The durable event log: every event of the bus, appended in order, kept for replay.

Each event gets a global ``position`` (1, 2, 3, ... over the whole log) and a ``version`` within its
stream (``mcp_server:<id>``, ``mcp_server_group:<id>``, or ``hangar`` for the rest), both assigned
synchronously by the bus listener, in publish order. The listener also builds the event's row (its
JSON by orjson, a microsecond or two) and keeps only the row: a worker thread then only binds and steps
the batch's statements, and never holds the GIL for a batch's row building, nor frees a batch's events
at once (``benchmarks.flush_pause``: the event loop's longest pause per flush 5-9 ms -> 2.4-3.5 ms).
Rows are written in batches by a background task, and the oldest events beyond ``max_events`` are
pruned there too.

Because positions are assigned inline, a reader that notes ``log.position`` and starts listening in
the same step of the event loop knows exactly where stored events end and live ones begin: the
WebSocket replay (``since``) has no gap and no duplicate. Live consumers attach with ``add_tap`` and
receive ``(position, event)`` right after the event is stamped.

A stream may have a snapshot: its aggregate state (``event_fold``) standing for its events up to a
version. Compaction deletes the events a snapshot stands for; a stream without a snapshot cannot be
compacted (``CompactionError``). Retention (``apply_retention``, run in the background by
``event_retention``) keeps the log bounded by age and by size, and the writer keeps at most
``max_events``. No event leaves the log unfolded: before any deletion the events about to go are folded
into their streams' snapshots, so ``stream_state`` (snapshot + later events) always equals the fold of
every event the stream ever had. The writer keeps each stream's state folded from the events it has
written (from the event objects, on its thread, after the write commits; after a restart seeded once
from the stored snapshot and events), so pruning saves that state as the snapshot instead of reading
back and parsing the events it deletes. Such a snapshot may stand for a later version than the pruning
needed: the events it also covers are then compacted or kept, both valid.

``EventLog`` holds the backend-independent part (stamping, buffering, taps, the writer loop, snapshots
and retention) and is the one interface every backend implements: ``event_log_sqlite`` (SQLite, WAL,
``events.db`` under the data directory) and ``event_log_pg`` (PostgreSQL); ``make_event_log`` picks one.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import functools
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson

from .config import EventStoreSettings
from .errors import CompactionError, StoreError, ValidationError
from .event_fold import Running, State, fold, initial
from .events import Event, EventBus
from .sqlite import WriteFailures, flush_loop

log = logging.getLogger(__name__)
T = TypeVar("T")

Tap = Callable[[int, Event], None]
WRITE_CHUNK = 5_000  # rows per write (one transaction)
FLUSH_BATCH = 8_000  # events waiting that start a flush before its interval is up
MAX_PENDING = 200_000  # events waiting for the disk; beyond this the oldest are not written (and counted)


def stream_of(event: Event) -> str:
    """The stream an event belongs to."""
    server = getattr(event, "mcp_server_id", None)
    if isinstance(server, str):
        return f"mcp_server:{server}"
    group = getattr(event, "group_id", None)
    if isinstance(group, str):
        return f"mcp_server_group:{group}"
    return "hangar"


def event_json(event: Event, produced_by: str) -> bytes:
    """The event as its JSON object: ``event_type``, the fields in order, then ``produced_by``."""
    return _event_json(event, produced_by_suffix(produced_by))


def produced_by_suffix(produced_by: str) -> bytes:
    return b',"produced_by":' + orjson.dumps(produced_by) + b"}"


def _event_json(event: Event, suffix: bytes) -> bytes:
    # One join of the class's prefix, the fields orjson wrote (without their braces) and the suffix.
    try:
        return b"".join((event.json_prefix, memoryview(orjson.dumps(event, default=str))[1:-1], suffix))
    except TypeError:  # orjson.JSONEncodeError: a key that is not a string, an integer past 64 bits, ...
        fields = event.to_dict()
        del fields["event_type"]  # the prefix has it
        return b"".join((event.json_prefix, memoryview(orjson.dumps(_plain(fields)))[1:-1], suffix))


def _plain(value: object, depth: int = 0) -> object:
    """``value`` as what JSON can hold, whatever it is: an event is stored even when a field holds
    something orjson refuses (keys become strings, what JSON has no form for becomes its text)."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, int):
        return value if -(2 ** 63) <= value < 2 ** 64 else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if depth >= 64:
        return "<nested too deep>"
    if isinstance(value, dict):
        return {k if isinstance(k, str) else _text(k): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v, depth + 1) for v in value]
    return _text(value)


def _text(value: object) -> str:
    try:
        return str(value)
    except Exception:  # an object whose __str__ fails still leaves its event storable
        return f"<{type(value).__name__}>"


@dataclass(frozen=True, slots=True)
class StoredEvent:
    position: int
    stream_id: str
    version: int
    event_type: str
    event_id: str
    occurred_at: float
    data: dict[str, Any]  # the event's dict (``event_type``, ``event_id``, ``occurred_at``, fields, ``produced_by``)


@dataclass(frozen=True, slots=True)
class Snapshot:
    stream_id: str
    version: int  # the snapshot stands for the stream's events up to and including this version
    state: dict[str, Any]
    created_at: float


# The stored row: (position, stream id, stream version, event type, event id, occurred at, JSON).
_Row = tuple[int, str, int, str, str, float, str]
# An event waiting for the disk: its row and its ``is_error`` (all the running fold needs besides).
_Pending = tuple[_Row, bool]


class EventLog(abc.ABC):
    """Stamps, fans out and persists every event of ``bus``. Open with ``open()``, run ``run()`` as a
    background task, and ``close()`` at the end (a final flush)."""

    def __init__(self, bus: EventBus, *, max_events: int = 100_000, produced_by: str = "",
                 interval: float = 1.0, batch: int = FLUSH_BATCH) -> None:
        self.max_events = max_events
        self.produced_by = produced_by
        self._suffix = produced_by_suffix(produced_by)
        self.position = 0  # of the last event stamped
        self.dropped = 0  # events never written because the disk fell too far behind
        self.compacted = 0  # events deleted after being folded into a snapshot (compaction and retention)
        self.snapshots_taken = 0
        self._bus = bus
        self._interval = interval
        self._batch = batch
        self._versions: dict[str, int] = {}
        self._early: list[Event] = []  # published before open(): stamped once positions are known
        self._pending: deque[_Pending] = deque()
        self._taps: list[Tap] = []
        self._opened = False
        self._wake = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._retire_lock = asyncio.Lock()
        self._written_since_prune = 0
        self._failures = WriteFailures(log, "event log")
        # The running folds, used by the writer's thread under the backend's lock (see ``_fold_written``).
        self._running: dict[str, Running] = {}  # each stream's fold of every event of it stored so far
        self._stored_at_open: set[str] = set()  # streams with events stored before this process
        self._seen: set[str] = set()  # streams written by this process
        self._unseeded: set[str] = set()  # written, but not followed by a running fold: seeded at the flush
        self._generation = 0  # bumped by every write and hand-saved snapshot: a seed read across one is stale
        bus.add_listener(self._on_event)

    # ------------------------------------------------------------------ the publisher's path

    def _on_event(self, event: Event) -> None:
        if not self._opened:
            self._early.append(event)
            return
        self._stamp(event)

    def _stamp(self, event: Event) -> None:
        data = _event_json(event, self._suffix).decode()  # first: nothing is counted for a failure here
        self.position = position = self.position + 1
        server = getattr(event, "mcp_server_id", None)
        stream = f"mcp_server:{server}" if server.__class__ is str else stream_of(event)
        versions = self._versions
        version = versions[stream] = versions.get(stream, 0) + 1
        row = (position, stream, version, event.__class__.__name__, event.event_id, event.occurred_at, data)
        pending = self._pending
        pending.append((row, getattr(event, "is_error", False) is True))
        if len(pending) >= self._batch:
            if len(pending) > MAX_PENDING:
                pending.popleft()
                self.dropped += 1
            self._wake.set()
        if self._taps:
            for tap in self._taps:
                try:
                    tap(position, event)
                except Exception:  # a broken consumer must never break the publisher
                    log.exception("event log tap failed")

    def add_tap(self, tap: Tap) -> None:
        """Call ``tap(position, event)`` for every event from now on, inline: it must be cheap."""
        self._taps.append(tap)

    def remove_tap(self, tap: Tap) -> None:
        with contextlib.suppress(ValueError):
            self._taps.remove(tap)

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        position, versions = await self._open_storage()
        self._stored_at_open = set(versions)
        self.position = max(self.position, position)
        self._versions = {**versions, **self._versions}
        self._opened = True
        early, self._early = self._early, []
        for event in early:
            self._stamp(event)

    async def run(self) -> None:
        """Write batches until cancelled; the final flush happens in ``close``."""
        await flush_loop(self._wake, self._interval, self.flush)

    async def flush(self) -> None:
        """Write every event stamped so far (and prune to ``max_events`` when due)."""
        prune_below = 0
        async with self._flush_lock:
            batch, self._pending = self._pending, deque()
            if not batch:
                return
            self._written_since_prune += len(batch)
            if self._written_since_prune >= max(100, self.max_events // 10):
                self._written_since_prune = 0
                prune_below = batch[-1][0][0] - self.max_events + 1
            # A backlog leaves in slices, one transaction each, so one write never binds every row at once.
            while batch:
                if len(batch) <= WRITE_CHUNK:  # the usual case: one slice, copied at C speed
                    chunk = list(batch)
                    batch.clear()
                else:
                    chunk = [batch.popleft() for _ in range(WRITE_CHUNK)]
                try:
                    await self._write(chunk)
                except StoreError as exc:
                    self._keep_unwritten(chunk, batch, exc)
                    return
            self._failures.succeeded()
            if self._unseeded:
                await self._seed()
        if prune_below > 1:
            try:
                await self.retire_below(prune_below)
            except StoreError:
                log.exception("could not prune the event log")

    def _keep_unwritten(self, chunk: list[_Pending], rest: deque[_Pending], exc: StoreError) -> None:
        """A failed write loses nothing: its events go back in front of those published meanwhile, in
        order, for the next flush (a database that restarts, a disk that is freed). The bound on events
        waiting still holds: beyond it the oldest are not written, and counted."""
        rest.extendleft(reversed(chunk))
        rest.extend(self._pending)
        while len(rest) > MAX_PENDING:
            rest.popleft()
            self.dropped += 1
        self._pending = rest
        self._failures.failed(exc.message, len(rest))

    async def close(self) -> None:
        self._bus.remove_listener(self._on_event)
        if self._opened:
            await self.flush()
            if self._pending:
                log.error("%d events could not be written to the event log before closing", len(self._pending))
            await self._close_storage()

    # ------------------------------------------------------------------ the running folds

    def _fold_written(self, batch: list[_Pending]) -> None:
        """Fold the events of ``batch`` into their streams' running states. Run by the backend on the
        writer's thread, under its lock, right after the write committed."""
        running = self._running
        touched: dict[str, Running] = {}
        for row, is_error in batch:
            stream, version = row[1], row[2]
            entry = running.get(stream)
            if entry is None:
                if stream in self._seen or stream in self._stored_at_open:
                    self._unseeded.add(stream)  # its stored events are folded in by ``_seed``
                    continue
                entry = running[stream] = Running(stream, initial(stream), 0)  # new: nothing stored before
                self._seen.add(stream)
            if version <= entry.version:
                continue  # written again after a write that failed once committed
            touched[stream] = entry
            try:
                entry.add(row[3], row[5], is_error, row[6])
            except Exception:
                self._unfoldable(stream)
                continue
            entry.version = version
        for stream, entry in touched.items():
            try:
                entry.settle()
            except Exception:
                self._unfoldable(stream)
        self._generation += 1

    def _unfoldable(self, stream_id: str) -> None:
        # A state (from a snapshot saved by hand) that does not fold: read back when needed instead.
        log.warning("the running state of stream %s does not fold; it is read back when needed", stream_id)
        self._running.pop(stream_id, None)

    async def _seed(self) -> None:
        """Give every stream written without a running fold one: its stored state (snapshot + events),
        read while no write runs (the flush lock is held); dropped if a write slipped in meanwhile."""
        streams = list(self._unseeded)
        self._unseeded.clear()
        for stream_id in streams:
            generation = self._generation
            try:
                state, version = await self.stream_state(stream_id)
                await self._serialized(functools.partial(self._install, stream_id, Running(stream_id, state, version),
                                                         generation))
            except StoreError:
                self._unseeded.add(stream_id)

    def _install(self, stream_id: str, entry: Running, generation: int) -> None:
        if self._generation == generation and stream_id not in self._running:
            self._running[stream_id] = entry
        else:
            self._unseeded.add(stream_id)

    async def _running_snapshot(self, stream_id: str, version: int) -> Snapshot | None:
        """A snapshot of the running fold of ``stream_id`` if it stands for ``version`` or later."""
        def copy() -> tuple[int, State] | None:
            entry = self._running.get(stream_id)
            if entry is None or entry.version < version:
                return None
            return entry.version, orjson.loads(orjson.dumps(entry.state))

        taken = await self._serialized(copy)
        return None if taken is None else Snapshot(stream_id, taken[0], taken[1], time.time())

    def _forget_running(self, stream_id: str) -> None:
        """A snapshot saved by hand is the stream's new base: its running fold is read again (run by
        ``_serialized``, as every change of the running folds is)."""
        self._seen.add(stream_id)
        self._running.pop(stream_id, None)
        self._generation += 1

    @staticmethod
    def _batch_rows(batch: list[_Pending]) -> tuple[list[_Row], dict[str, int]]:
        """The rows of ``batch`` and every stream's last version among them."""
        rows = [item[0] for item in batch]
        return rows, {row[1]: row[2] for row in rows}

    # ------------------------------------------------------------------ snapshots, compaction, retention

    def stream_version(self, stream_id: str) -> int:
        """The last version stamped in ``stream_id`` (0: no event yet)."""
        return self._versions.get(stream_id, 0)

    def stream_versions(self) -> dict[str, int]:
        """Every stream's last stamped version."""
        return dict(self._versions)

    async def stream_state(self, stream_id: str, up_to_version: int | None = None) -> tuple[dict[str, Any], int]:
        """The stream's folded state from its snapshot and the stored events after it (up to
        ``up_to_version``), and the version of the last event folded (0: none)."""
        snapshot = await self.load_snapshot(stream_id)
        state = initial(stream_id)
        after = 0
        if snapshot is not None:
            state.update(snapshot.state)  # keys added since the snapshot keep their empty values
            after = snapshot.version
        last = after
        while up_to_version is None or after < up_to_version:
            page = await self.read_stream(stream_id, after, 1000)
            wanted = [e for e in page if up_to_version is None or e.version <= up_to_version]
            if wanted:  # folded off the event loop: a pruned batch may hold thousands of events
                await asyncio.to_thread(_fold_page, stream_id, state, wanted)
                last = wanted[-1].version
            if len(page) < 1000 or len(wanted) < len(page):
                break
            after = page[-1].version
        return state, last

    async def snapshot_stream(self, stream_id: str, up_to_version: int | None = None) -> Snapshot | None:
        """Fold the stream's events up to ``up_to_version`` (default: its last) into a new snapshot; None
        when its snapshot already stands for them."""
        await self.flush()
        version = self.stream_version(stream_id) if up_to_version is None else up_to_version
        current = await self.load_snapshot(stream_id)
        if version <= 0 or (current is not None and current.version >= version):
            return None
        snapshot = await self._running_snapshot(stream_id, version)
        if snapshot is None or snapshot.version != version:
            state, _ = await self.stream_state(stream_id, version)
            snapshot = Snapshot(stream_id, version, state, time.time())
        await self._save_snapshot(snapshot)
        self.snapshots_taken += 1
        return snapshot

    async def retire_below(self, position: int) -> int:
        """Delete every event before ``position``, after folding them into their streams' snapshots."""
        async with self._retire_lock:
            done = await self.snapshot_versions()
            for stream_id, version in (await self._versions_below(position)).items():
                if done.get(stream_id, 0) < version:
                    # The running fold when it covers the events going (a later version is as good).
                    snapshot = await self._running_snapshot(stream_id, version)
                    if snapshot is None:
                        state, _ = await self.stream_state(stream_id, version)
                        snapshot = Snapshot(stream_id, version, state, time.time())
                    await self._save_snapshot(snapshot)
                    self.snapshots_taken += 1
            removed = await self._delete_below(position)
            self.compacted += removed
            return removed

    async def apply_retention(self, max_age_s: float | None, max_size_bytes: int | None) -> tuple[int, int]:
        """Delete events older than ``max_age_s``, then the oldest until the stored events take at most
        ``max_size_bytes``; return (removed by age, removed by size). What goes is folded first."""
        await self.flush()
        by_age = by_size = 0
        if max_age_s is not None:
            cut = await self.position_before(time.time() - max_age_s)
            oldest, _, _ = await self.bounds()
            if oldest and cut >= oldest:
                by_age = await self.retire_below(cut + 1)
        for _ in range(8) if max_size_bytes is not None else ():
            assert max_size_bytes is not None
            used = await self.size_bytes()
            _, _, count = await self.bounds()
            if used <= max_size_bytes or not count:
                break
            # Remove a share of the oldest events proportional to the excess (plus a margin).
            share = min(1.0, (used - max_size_bytes) / used + 0.05)
            cut = await self._position_at(max(0, int(count * share) - 1))
            by_size += await self.retire_below(cut + 1)
        if by_age or by_size:
            await self.reclaim()
        return by_age, by_size

    async def save_snapshot(self, stream_id: str, state: dict[str, Any], version: int | None = None) -> Snapshot:
        """Record ``state`` as standing for ``stream_id`` up to ``version`` (default: its last event).
        Pending events are written first, so a snapshot never refers to events not yet on disk."""
        await self.flush()
        last = self.stream_version(stream_id)
        version = last if version is None else version
        if not 1 <= version <= last:
            raise ValidationError(f"stream '{stream_id}' has versions 1..{last}; cannot snapshot version {version}")
        snapshot = Snapshot(stream_id, version, dict(state), time.time())
        await self._save_snapshot(snapshot)
        await self._serialized(functools.partial(self._forget_running, stream_id))
        return snapshot

    async def compact_stream(self, stream_id: str) -> int:
        """Delete the events of ``stream_id`` that its latest snapshot stands for; return how many went.
        Raises ``CompactionError`` when the stream has no snapshot."""
        await self.flush()
        snapshot = await self.load_snapshot(stream_id)
        if snapshot is None:
            raise CompactionError(stream_id, "it has no snapshot; save a snapshot before compacting")
        removed = await self._delete_stream_events(stream_id, snapshot.version)
        self.compacted += removed
        return removed

    @abc.abstractmethod
    async def _save_snapshot(self, snapshot: Snapshot) -> None:
        """Store ``snapshot`` unless the stream already has one of a later version."""

    @abc.abstractmethod
    async def load_snapshot(self, stream_id: str) -> Snapshot | None:
        """The latest snapshot of ``stream_id``, or None."""

    async def snapshotted_streams(self) -> list[str]:
        """Every stream that has a snapshot."""
        return sorted(await self.snapshot_versions())

    @abc.abstractmethod
    async def snapshot_versions(self) -> dict[str, int]:
        """Every stream that has a snapshot, with the version its latest snapshot stands for."""

    @abc.abstractmethod
    async def _delete_stream_events(self, stream_id: str, up_to_version: int) -> int: ...

    @abc.abstractmethod
    async def _versions_below(self, position: int) -> dict[str, int]:
        """For every stream with events before ``position``: the last version among them."""

    @abc.abstractmethod
    async def _delete_below(self, position: int) -> int:
        """Delete the events before ``position``; return how many went."""

    @abc.abstractmethod
    async def _position_at(self, offset: int) -> int:
        """The position of the stored event with ``offset`` older events (0: the oldest)."""

    @abc.abstractmethod
    async def reclaim(self) -> None:
        """Give the space of deleted events back (where the backend can)."""

    @abc.abstractmethod
    async def size_bytes(self) -> int:
        """The space the stored events and snapshots take (not counting free space kept for reuse)."""

    # ------------------------------------------------------------------ storage (one per backend)

    @abc.abstractmethod
    async def _open_storage(self) -> tuple[int, dict[str, int]]:
        """Open; return the last stored position and every stream's last version."""

    @abc.abstractmethod
    async def _close_storage(self) -> None: ...

    @abc.abstractmethod
    async def _write(self, batch: list[_Pending]) -> None:
        """Store ``batch`` and the streams' last versions, in one transaction; then ``_fold_written``."""

    @abc.abstractmethod
    async def _serialized(self, fn: Callable[[], T]) -> T:
        """``fn()`` on the writer's thread under the lock that writes hold (``StoreError`` when closed)."""

    @abc.abstractmethod
    async def read(self, after: int, up_to: int, limit: int = 500) -> list[StoredEvent]:
        """Stored events with ``after < position <= up_to``, oldest first, at most ``limit``."""

    @abc.abstractmethod
    async def read_stream(self, stream_id: str, after_version: int = 0, limit: int = 500) -> list[StoredEvent]:
        """One stream's stored events after ``after_version``, oldest first."""

    @abc.abstractmethod
    async def position_of(self, event_id: str) -> int | None:
        """The position of a stored event, or None when it is unknown or pruned."""

    @abc.abstractmethod
    async def position_before(self, timestamp: float) -> int:
        """The position after which every stored event occurred later than ``timestamp``."""

    @abc.abstractmethod
    async def bounds(self) -> tuple[int, int, int]:
        """(oldest stored position, newest stored position, number stored); zeros when empty."""


_COLUMNS = "global_position, stream_id, stream_version, event_type, event_id, occurred_at, data"


def _fold_page(stream_id: str, state: dict[str, Any], events: list[StoredEvent]) -> None:
    for event in events:
        fold(stream_id, state, event.data)


def _stored(row: tuple[Any, ...]) -> StoredEvent:
    return StoredEvent(row[0], row[1], row[2], row[3], row[4], row[5], orjson.loads(row[6]))


def make_event_log(settings: EventStoreSettings, data_dir: Path, bus: EventBus, **kwargs: Any) -> EventLog:
    """The event log ``event_store`` names: SQLite ``events.db`` in ``data_dir``, or PostgreSQL."""
    if settings.driver == "postgresql":
        from .event_log_pg import PostgresEventLog

        assert settings.dsn is not None  # the settings refuse postgresql without a dsn
        return PostgresEventLog(settings.dsn, bus, schema=settings.pg_schema, **kwargs)
    from .event_log_sqlite import SqliteEventLog

    return SqliteEventLog(data_dir / "events.db", bus, **kwargs)
