"""Events of configuration reloads. Defining them registers them with the bus's event registry, so the
WebSocket stream, metrics and the event log see them like any other event (stream ``hangar``)."""

from __future__ import annotations

from dataclasses import field

from .events import Event, event_class


@event_class
class ConfigurationReloadRequested(Event):
    config_path: str
    trigger: str  # api, watcher, sighup, mcp_tool


@event_class
class ConfigurationReloaded(Event):
    config_path: str
    trigger: str
    mcp_servers_added: list[str] = field(default_factory=list)
    mcp_servers_removed: list[str] = field(default_factory=list)
    mcp_servers_updated: list[str] = field(default_factory=list)
    mcp_servers_restarted: list[str] = field(default_factory=list)
    groups_added: list[str] = field(default_factory=list)
    groups_removed: list[str] = field(default_factory=list)
    groups_updated: list[str] = field(default_factory=list)
    discovery_sources_changed: list[str] = field(default_factory=list)
    auth_changed: list[str] = field(default_factory=list)  # live auth settings applied (role_assignments ...)
    unchanged_count: int = 0
    duration_ms: float = 0.0


@event_class
class ConfigurationReloadFailed(Event):
    config_path: str
    trigger: str
    error: str  # the error class name
    message: str
    problems: list[str] = field(default_factory=list)
