"""Helpers of the discovery tests: config blocks and waiting on discovery events with deadlines."""

from __future__ import annotations

from typing import Any

from mcp_hangar.events import Event, Subscription


def discovery_block(*sources: dict[str, Any], security: dict[str, Any] | None = None,
                    **settings: Any) -> dict[str, Any]:
    """A ``discovery:`` block whose cycle is long, so what happens in a test happens through watching."""
    return {"discovery": {"refresh_interval_s": 300, "grace_period_s": 0.5, "sources": list(sources),
                          "security": {"health_check_timeout_s": 20, **(security or {})}, **settings}}


def manual_block(*sources: dict[str, Any], **settings: Any) -> dict[str, Any]:
    """Discovery without automatic cycles or watching: only the test's own scans run (deterministic)."""
    return discovery_block(*sources, enabled=False, **settings)


def fs_source(path: Any, mode: str = "additive", **config: Any) -> dict[str, Any]:
    return {"id": "files", "source_type": "filesystem", "mode": mode, "config": {"path": str(path), **config}}


async def next_event(sub: Subscription, event_type: str, name: str | None = None, timeout: float = 20,
                     **fields: Any) -> Event:
    """The next ``event_type`` event (for server ``name``, with ``fields``); TimeoutError at the deadline."""

    def match(event: Event) -> bool:
        if event.event_type != event_type:
            return False
        if name is not None and getattr(event, "mcp_server_id", None) != name:
            return False
        return all(getattr(event, k, None) == v for k, v in fields.items())

    return await sub.wait_for(match, timeout)


async def watching(hangar: Any, source_id: str, timeout: float = 20) -> None:
    """Return once the source's watch is established (changes from now on are seen as they happen)."""
    state = hangar.discovery.sources[source_id]
    with hangar.bus.subscription() as sub:
        while not state.watching:
            await sub.wait_for(lambda e: e.event_type == "DiscoveryCycleCompleted", timeout)
