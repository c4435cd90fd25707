"""What the manager remembers: one ``Record`` per proposed server name and one ``SourceState`` per source.

A record's ``status`` is the state of the latest proposal (pending, quarantined, approved, rejected);
``approved_spec`` is the spec that is in the fleet, if any. They differ when a source changes a server
that was approved: the change waits for approval while the approved spec keeps serving.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

from ..config import DiscoverySourceSpec
from .base import DiscoverySource

Status = Literal["pending", "quarantined", "approved", "rejected"]
STATUSES: tuple[Status, ...] = ("pending", "quarantined", "approved", "rejected")


@dataclass
class Record:
    name: str
    source_id: str
    source_type: str
    status: Status
    fingerprint: str
    spec: dict[str, Any] | None  # the proposed spec (None: invalid, see reason)
    group: str | None = None
    origin: str = ""
    reason: str | None = None  # why it is quarantined
    recheck: bool = False  # quarantined by a failed health check: checked again at later cycles
    discovered_at: float = field(default_factory=time.time)
    last_seen: float = field(default_factory=time.time)
    decided_at: float | None = None
    present: bool = True  # False once the source stopped proposing it
    lost_at: float | None = None
    approved_spec: dict[str, Any] | None = None  # what runs in the fleet
    tools: list[dict[str, Any]] | None = None  # seen by the health check

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def row(self) -> dict[str, Any]:
        """The REST and MCP view."""
        return {
            "mcp_server_id": self.name,
            "name": self.name,
            "status": self.status,
            "source_id": self.source_id,
            "source_type": self.source_type,
            "mode": (self.spec or {}).get("mode"),
            "group": self.group,
            "origin": self.origin,
            "fingerprint": self.fingerprint,
            "reason": self.reason,
            "discovered_at": self.discovered_at,
            "last_seen": self.last_seen,
            "decided_at": self.decided_at,
            "present": self.present,
            "lost_at": self.lost_at,
            "registered": self.approved_spec is not None,
            "update": self.approved_spec is not None and self.status in ("pending", "quarantined"),
            "spec": self.spec,
            "tools": [t.get("name") for t in self.tools or []],
        }


@dataclass
class SourceState:
    source_id: str
    spec: DiscoverySourceSpec
    origin: Literal["config", "api"]
    source: DiscoverySource | None = None
    create_error: str | None = None
    is_healthy: bool = True
    error_message: str | None = None
    last_discovery: float | None = None
    last_duration_ms: float | None = None
    found: int = 0
    cycles: int = 0
    errors: int = 0
    admissions: deque[float] = field(default_factory=deque)  # monotonic times, for the per-minute limit
    refused: dict[str, str] = field(default_factory=dict)  # name -> reason already announced
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    watch_task: asyncio.Task[None] | None = None
    scan_task: asyncio.Task[None] | None = None
    rescan: str | None = None  # the trigger of a scan requested while one was running
    watching: bool = False  # its watch() is established: changes are seen as they happen

    @property
    def source_type(self) -> str:
        return self.spec.source_type

    def row(self, records: list[Record]) -> dict[str, Any]:
        mine = [r for r in records if r.source_id == self.source_id]
        return {
            "id": self.source_id,
            "source_id": self.source_id,
            "source_type": self.source_type,
            "mode": self.spec.mode,
            "is_healthy": self.is_healthy,
            "is_enabled": self.spec.enabled,
            "is_watching": self.watching,
            "last_discovery": self.last_discovery,
            "mcp_servers_count": self.found,
            "error_message": self.error_message,
            "origin": self.origin,
            "config": self.spec.config,
            "cycles": self.cycles,
            "errors": self.errors,
            "last_cycle_duration_ms": self.last_duration_ms,
            "mcp_servers": [{"name": r.name, "status": r.status, "present": r.present,
                             "registered": r.approved_spec is not None} for r in mine],
        }
