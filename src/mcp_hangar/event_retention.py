"""The event log's background pass: snapshots, compaction and retention.

Each pass, every stream that has grown by ``event_store.snapshot_every_events`` events since its last
snapshot gets a new one (its state folded by ``event_fold``), then every snapshotted stream is compacted
(its events up to the snapshot go); then events older than ``event_store.max_age_s`` go, then the
oldest until the log is below ``event_store.max_size_mb`` (folded into snapshots before they go)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from .config import EventStoreSettings
from .errors import HangarError
from .event_log import EventLog

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetentionOutcome:
    removed_by_age: int
    removed_by_size: int
    compacted: int
    size_bytes: int
    snapshots: int = 0


async def take_snapshots(event_log: EventLog, every: int) -> int:
    """Snapshot every stream with at least ``every`` events since its last snapshot; return how many."""
    await event_log.flush()
    done = await event_log.snapshot_versions()
    made = 0
    for stream_id, version in sorted(event_log.stream_versions().items()):
        if version - done.get(stream_id, 0) >= every and await event_log.snapshot_stream(stream_id, version):
            made += 1
    return made


async def run_retention(event_log: EventLog, settings: EventStoreSettings) -> RetentionOutcome:
    """One pass of the policy."""
    every = settings.snapshot_every_events
    snapshots = await take_snapshots(event_log, every) if every is not None else 0
    compacted = 0
    for stream_id in await event_log.snapshotted_streams():
        compacted += await event_log.compact_stream(stream_id)
    max_size = int(settings.max_size_mb * 1024 * 1024) if settings.max_size_mb is not None else None
    by_age, by_size = await event_log.apply_retention(settings.max_age_s, max_size)
    if compacted and not (by_age or by_size):
        await event_log.reclaim()
    outcome = RetentionOutcome(by_age, by_size, compacted, await event_log.size_bytes(), snapshots)
    if by_age or by_size or compacted:
        log.info("event log retention: %d snapshots, %d events compacted, %d removed by age, %d by size; "
                 "%d bytes used", snapshots, compacted, by_age, by_size, outcome.size_bytes)
    return outcome


async def retention_loop(event_log: EventLog, settings: EventStoreSettings) -> None:
    """Run the policy every ``retention_interval_s`` until cancelled; a failed pass is logged and retried."""
    while True:
        await asyncio.sleep(settings.retention_interval_s)
        try:
            await run_retention(event_log, settings)
        except HangarError as exc:
            log.error("event log retention failed: %s", exc.message)
