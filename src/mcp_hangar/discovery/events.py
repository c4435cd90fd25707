"""Discovery's domain events. Defining them registers them with the bus's event registry, so the
WebSocket stream, metrics and the event log see them like any other event."""

from __future__ import annotations

from ..events import Event, McpServerEvent, event_class


@event_class
class McpServerDiscovered(McpServerEvent):
    source_id: str
    source_type: str
    status: str  # pending, quarantined, approved (auto_register)
    fingerprint: str
    origin: str = ""


@event_class
class McpServerDiscoveryLost(McpServerEvent):
    source_id: str
    status: str  # what it was when it vanished
    action: str  # dropped (pending/quarantined), kept (additive), removal_scheduled (authoritative)


@event_class
class McpServerDiscoveryConfigChanged(McpServerEvent):
    source_id: str
    old_fingerprint: str
    new_fingerprint: str


@event_class
class McpServerQuarantined(McpServerEvent):
    source_id: str
    reason: str


@event_class
class McpServerApproved(McpServerEvent):
    source_id: str
    automatic: bool = False


@event_class
class McpServerRejected(McpServerEvent):
    source_id: str


@event_class
class McpServerDiscoveryRefused(McpServerEvent):
    """A discovered server was not proposed: over a limit, or its id is taken."""

    source_id: str
    reason: str  # max_servers_per_source, max_registrations_per_minute, conflict, health_check_failed
    message: str


@event_class
class DiscoveryCycleCompleted(Event):
    source_id: str
    source_type: str
    found: int
    duration_ms: float
    trigger: str  # interval, event, request, startup
    error: str | None = None


@event_class
class DiscoverySourceHealthChanged(Event):
    source_id: str
    source_type: str
    is_healthy: bool
    error_message: str | None = None
