"""Per-source discovery metrics, fed from the bus from boot on (whether or not the REST API is loaded)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from ..events import Event, EventBus
from .events import DiscoveryCycleCompleted


class DiscoveryMetrics:
    """Per-source counters and gauges, fed by ``DiscoveryCycleCompleted`` events."""

    def __init__(self, registry: CollectorRegistry, bus: EventBus, prefix: str = "mcp_hangar_") -> None:
        self.cycles = Counter(prefix + "discovery_cycles", "Discovery cycles per source", ["source"],
                              registry=registry)
        self.errors = Counter(prefix + "discovery_errors", "Discovery cycles that failed, per source", ["source"],
                              registry=registry)
        self.found = Gauge(prefix + "discovery_mcp_servers", "Servers the source proposed at its last cycle",
                           ["source"], registry=registry)
        self.last_cycle = Gauge(prefix + "discovery_last_cycle_timestamp_seconds", "End of the last cycle",
                                ["source"], registry=registry)
        self.duration = Gauge(prefix + "discovery_cycle_duration_seconds", "Duration of the last cycle",
                              ["source"], registry=registry)
        bus.add_listener(self.on_event, (DiscoveryCycleCompleted,))

    def on_event(self, event: Event) -> None:
        if not isinstance(event, DiscoveryCycleCompleted):
            return
        source = event.source_id
        self.cycles.labels(source).inc()
        errors = self.errors.labels(source)  # present (at 0) from the first cycle on
        if event.error is not None:
            errors.inc()
        else:
            self.found.labels(source).set(event.found)
        self.last_cycle.labels(source).set(event.occurred_at)
        self.duration.labels(source).set(event.duration_ms / 1000)
