"""The event log's retention policy, run in the background: events older than ``event_store.max_age_s``
go, then the oldest until the log is below ``event_store.max_size_mb``, and every stream that has a
snapshot is compacted (its events up to the snapshot go)."""

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


async def run_retention(event_log: EventLog, settings: EventStoreSettings) -> RetentionOutcome:
    """One pass of the policy."""
    max_size = int(settings.max_size_mb * 1024 * 1024) if settings.max_size_mb is not None else None
    by_age, by_size = await event_log.apply_retention(settings.max_age_s, max_size)
    compacted = 0
    for stream_id in await event_log.snapshotted_streams():
        compacted += await event_log.compact_stream(stream_id)
    outcome = RetentionOutcome(by_age, by_size, compacted, await event_log.size_bytes())
    if by_age or by_size or compacted:
        log.info("event log retention: %d events removed by age, %d by size, %d compacted; %d bytes used",
                 by_age, by_size, compacted, outcome.size_bytes)
    return outcome


async def retention_loop(event_log: EventLog, settings: EventStoreSettings) -> None:
    """Run the policy every ``retention_interval_s`` until cancelled; a failed pass is logged and retried."""
    while True:
        await asyncio.sleep(settings.retention_interval_s)
        try:
            await run_retention(event_log, settings)
        except HangarError as exc:
            log.error("event log retention failed: %s", exc.message)
