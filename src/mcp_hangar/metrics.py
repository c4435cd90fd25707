"""Prometheus metrics, fed by an event-bus listener. Each Hangar has its own registry.

Labels stay bounded: server ids, tool names, states, route templates and status codes; never call
ids or principals.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from . import __version__
from .events import (
    Event,
    GroupCallRouted,
    GroupDeleted,
    GroupEvent,
    HealthCheckFailed,
    HealthCheckPassed,
    McpServerDeregistered,
    McpServerRegistered,
    McpServerStarted,
    McpServerStateChanged,
    McpServerStopped,
    ToolInvocationCompleted,
    ToolInvocationFailed,
)
from .loop_metrics import CounterChild, HistogramChild, LoopCounter, LoopHistogram
from .models import State

if TYPE_CHECKING:
    from .front.session import Front
    from .hangar import Hangar

PREFIX = "mcp_hangar_"
GROUP_STATES = ("inactive", "partial", "healthy", "degraded")
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
START_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)
# What Metrics.on_event acts on (the bus calls it for these only).
_METRIC_EVENTS = (GroupEvent, ToolInvocationCompleted, ToolInvocationFailed, McpServerStateChanged, McpServerStarted,
                  McpServerStopped, HealthCheckPassed, HealthCheckFailed, McpServerRegistered, McpServerDeregistered)
_OBSERVED_EVENTS = (McpServerStateChanged, HealthCheckPassed, HealthCheckFailed, McpServerDeregistered)


class Metrics:
    def __init__(self, hangar: Hangar) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        Info(PREFIX + "build", "Hangar build information", registry=r).info({"version": __version__})
        self.server_state = Gauge(PREFIX + "mcp_server_state", "1 for the current state of each server",
                                  ["mcp_server", "state"], registry=r)
        self.server_up = Gauge(PREFIX + "mcp_server_up", "1 when the server is ready", ["mcp_server"], registry=r)
        self.starts = Counter(PREFIX + "mcp_server_starts", "Successful server starts", ["mcp_server"], registry=r)
        self.stops = Counter(PREFIX + "mcp_server_stops", "Server stops by reason", ["mcp_server", "reason"],
                             registry=r)
        self.cold_start = Histogram(PREFIX + "mcp_server_cold_start_seconds", "Time from spawn to ready",
                                    ["mcp_server"], buckets=START_BUCKETS, registry=r)
        self.health_checks = Counter(PREFIX + "health_checks", "Active health checks by result",
                                     ["mcp_server", "result"], registry=r)
        # label children of tool_calls/duration, by (server, tool, is_error)
        self._completed: dict[tuple[str, str, bool], tuple[CounterChild, HistogramChild]] = {}
        self.tool_calls = LoopCounter(PREFIX + "tool_calls", "Tool calls by outcome",
                                      ["mcp_server", "tool", "outcome"], r)
        self.tool_errors = Counter(PREFIX + "tool_call_errors", "Failed tool calls by error type",
                                   ["mcp_server", "tool", "error_type"], registry=r)
        self.tool_duration = LoopHistogram(PREFIX + "tool_call_duration_seconds", "Tool call duration",
                                           ["mcp_server", "tool"], r, LATENCY_BUCKETS)
        self.http_requests = LoopCounter(PREFIX + "http_requests", "HTTP requests by route template and status",
                                         ["method", "route", "status"], r)
        self.http_duration = LoopHistogram(PREFIX + "http_request_duration_seconds", "HTTP request duration",
                                           ["method", "route"], r, LATENCY_BUCKETS)
        self.group_state = Gauge(PREFIX + "group_state", "1 for the current state of each group",
                                 ["group", "state"], registry=r)
        self.group_in_rotation = Gauge(PREFIX + "group_members_in_rotation", "Members in rotation", ["group"],
                                       registry=r)
        self.group_members = Gauge(PREFIX + "group_members", "Members of the group", ["group"], registry=r)
        self.group_circuit_open = Gauge(PREFIX + "group_circuit_open", "1 while the group's circuit is open "
                                        "or half-open", ["group"], registry=r)
        self.group_calls = Counter(PREFIX + "group_calls", "Call attempts through a group, by member and outcome",
                                   ["group", "member", "outcome"], registry=r)
        self._hangar = hangar
        for server in hangar.servers.values():
            self._set_state(server.server_id, server.state.value)
        for gid in hangar.groups.groups:
            self._group_gauges(gid)
        hangar.bus.add_listener(self.on_event, _METRIC_EVENTS)
        self._init_observability(hangar)

    def _set_state(self, server_id: str, state: str) -> None:
        for s in State:
            self.server_state.labels(server_id, s.value).set(1 if s.value == state else 0)
        self.server_up.labels(server_id).set(1 if state == State.READY.value else 0)

    def _group_event(self, event: GroupEvent) -> None:
        gid = event.group_id
        if isinstance(event, GroupCallRouted):
            self.group_calls.labels(gid, event.member_id, event.outcome).inc()
            return
        self._group_gauges(gid, deleted=isinstance(event, GroupDeleted))

    def _group_gauges(self, gid: str, deleted: bool = False) -> None:
        group = self._hangar.groups.groups.get(gid)
        if deleted or group is None:
            for s in GROUP_STATES:
                self.group_state.remove(gid, s)
            for gauge in (self.group_in_rotation, self.group_members, self.group_circuit_open):
                gauge.remove(gid)
            return
        for s in GROUP_STATES:
            self.group_state.labels(gid, s).set(1 if s == group.state.value else 0)
        self.group_in_rotation.labels(gid).set(sum(1 for m in group.members if m.in_rotation))
        self.group_members.labels(gid).set(len(group.members))
        self.group_circuit_open.labels(gid).set(0 if group.circuit.state == "closed" else 1)

    def on_event(self, event: Event) -> None:
        """Events of ``_METRIC_EVENTS`` only (the bus skips the rest): keep the two in step."""
        if isinstance(event, GroupEvent):
            with contextlib.suppress(KeyError):  # a removal of labels never set
                self._group_event(event)
        elif isinstance(event, ToolInvocationCompleted):
            key = (event.mcp_server_id, event.tool_name, event.is_error)
            children = self._completed.get(key)
            if children is None:  # the label lookup costs more than the count: once per (server, tool)
                outcome = "error" if event.is_error else "success"
                children = (self.tool_calls.labels(event.mcp_server_id, event.tool_name, outcome),
                            self.tool_duration.labels(event.mcp_server_id, event.tool_name))
                self._completed[key] = children
            children[0].inc()
            children[1].observe(event.duration_ms / 1000)
        elif isinstance(event, ToolInvocationFailed):
            self.tool_calls.labels(event.mcp_server_id, event.tool_name, "failure").inc()
            self.tool_errors.labels(event.mcp_server_id, event.tool_name, event.error_type).inc()
            self.tool_duration.labels(event.mcp_server_id, event.tool_name).observe(event.duration_ms / 1000)
        elif isinstance(event, McpServerStateChanged):
            self._set_state(event.mcp_server_id, event.new_state)
        elif isinstance(event, McpServerStarted):
            self.starts.labels(event.mcp_server_id).inc()
            self.cold_start.labels(event.mcp_server_id).observe(event.startup_duration_ms / 1000)
        elif isinstance(event, McpServerStopped):
            self.stops.labels(event.mcp_server_id, event.reason).inc()
        elif isinstance(event, HealthCheckPassed):
            self.health_checks.labels(event.mcp_server_id, "passed").inc()
        elif isinstance(event, HealthCheckFailed):
            self.health_checks.labels(event.mcp_server_id, "failed").inc()
        elif isinstance(event, McpServerRegistered):
            self._set_state(event.mcp_server_id, State.COLD.value)
        elif isinstance(event, McpServerDeregistered):
            for s in State:
                self.server_state.remove(event.mcp_server_id, s.value)
            self.server_up.remove(event.mcp_server_id)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    # ------------------------------------------------------------------ observability families
    # Server info, health-check durations, in-flight calls, the WebSocket stream, MCP front sessions, and
    # the families of surfaces fed by events of later features (config reload, auth, rate limits): those
    # exist from the start with zero values and move when their events are published. (Discovery
    # registers its own families in web/discovery.py, groups theirs above.)

    def _init_observability(self, hangar: Hangar) -> None:
        r = self.registry
        Gauge(PREFIX + "process_start_time_seconds", "When this Hangar started (epoch seconds)",
              registry=r).set(time.time() - hangar.uptime_s())
        self.last_state_change = Gauge(PREFIX + "mcp_server_last_state_change_timestamp_seconds",
                                       "When the server last changed state", ["mcp_server"], registry=r)
        self.health_duration = Histogram(PREFIX + "health_check_duration_seconds", "Active health check duration",
                                         ["mcp_server"], buckets=LATENCY_BUCKETS, registry=r)
        self.websocket_clients = Gauge(PREFIX + "websocket_clients", "Open /api/ws/events connections",
                                       registry=r)
        self.websocket_dropped = Counter(PREFIX + "websocket_dropped_events", "Events dropped for slow WebSocket "
                                         "clients (oldest first)", registry=r)
        self.config_reloads = Counter(PREFIX + "config_reloads", "Configuration reloads applied", registry=r)
        self.config_reload_failures = Counter(PREFIX + "config_reload_failures", "Configuration reloads refused",
                                              registry=r)
        self.auth_failures = Counter(PREFIX + "auth_failures", "Failed authentications", registry=r)
        self.auth_denials = Counter(PREFIX + "auth_denials", "Requests denied for lack of a permission", registry=r)
        self.rate_limit_hits = Counter(PREFIX + "rate_limit_hits", "Requests refused by a rate limit", registry=r)
        # Events of later features, by name, so that publishing them is all it takes.
        self._counted_by_name: dict[str, Counter] = {
            "ConfigurationReloaded": self.config_reloads,
            "ConfigurationReloadFailed": self.config_reload_failures,
            "AuthenticationFailed": self.auth_failures,
            "AuthorizationDenied": self.auth_denials,
            "RateLimitExceeded": self.rate_limit_hits,
            "RateLimitHit": self.rate_limit_hits,
        }
        self._live = _LiveCollector(hangar)
        r.register(self._live)
        hangar.bus.add_listener(self._on_observability_event, self._observes)

    def observe_front(self, front: Front) -> None:
        """Report the MCP front's sessions (by protocol era and transport)."""
        self._live.front = front

    def _observes(self, cls: type[Event]) -> bool:
        """The event classes ``_on_observability_event`` acts on (asked once per class by the bus)."""
        return (issubclass(cls, _OBSERVED_EVENTS) or cls.__name__ in self._counted_by_name
                or cls.event_type is not Event.event_type)  # a class naming itself otherwise: asked per event

    def _on_observability_event(self, event: Event) -> None:
        if isinstance(event, McpServerStateChanged):
            self.last_state_change.labels(event.mcp_server_id).set(event.occurred_at)
        elif isinstance(event, (HealthCheckPassed, HealthCheckFailed)):
            self.health_duration.labels(event.mcp_server_id).observe(event.duration_ms / 1000)
        elif isinstance(event, McpServerDeregistered):
            with contextlib.suppress(KeyError):
                self.last_state_change.remove(event.mcp_server_id)
            with contextlib.suppress(KeyError):
                self.health_duration.remove(event.mcp_server_id)
        else:
            counter = self._counted_by_name.get(event.event_type)
            if counter is not None:
                counter.inc()


class _LiveCollector(Collector):
    """Families read from the live objects at scrape time, so the call path does no metrics work for them."""

    def __init__(self, hangar: Hangar) -> None:
        self.hangar = hangar
        self.front: Front | None = None

    def collect(self) -> Iterator[Any]:
        info = InfoMetricFamily(PREFIX + "mcp_server", "MCP server configuration",
                                labels=["mcp_server"])
        failures = GaugeMetricFamily(PREFIX + "health_check_consecutive_failures",
                                     "Failed calls and health checks since the last success", labels=["mcp_server"])
        in_flight = GaugeMetricFamily(PREFIX + "calls_in_flight", "Requests in flight to the server",
                                      labels=["mcp_server"])
        starting = GaugeMetricFamily(PREFIX + "mcp_server_cold_start_in_progress", "1 while the server is starting",
                                     labels=["mcp_server"])
        for server in list(self.hangar.servers.values()):
            sid = server.server_id
            upstream = server.upstream
            info.add_metric([sid], {"mode": server.spec.mode, "source": str(server.source),
                                    "protocol_version": (upstream.protocol_version or "") if upstream else ""})
            failures.add_metric([sid], server.consecutive_failures)
            in_flight.add_metric([sid], server.in_flight)
            starting.add_metric([sid], 1 if server.state == State.INITIALIZING else 0)
        yield from (info, failures, in_flight, starting)
        sessions = GaugeMetricFamily(PREFIX + "front_sessions", "Open MCP front sessions by protocol era",
                                     labels=["era", "transport"])
        opened = CounterMetricFamily(PREFIX + "front_sessions_opened", "MCP front sessions opened by protocol era "
                                     "(in the 2026-07-28 era over HTTP every request is its own session)",
                                     labels=["era", "transport"])
        front = self.front
        if front is not None:
            open_now: dict[tuple[str, str], int] = {}
            for session in list(front.sessions):
                key = (session.era or "unknown", session.transport)
                open_now[key] = open_now.get(key, 0) + 1
            for (era, transport), count in sorted(open_now.items()):
                sessions.add_metric([era, transport], count)
            for (era, transport), count in sorted(front.sessions_opened.items()):
                opened.add_metric([era, transport], count)
        yield from (sessions, opened)
        log = self.hangar.event_log
        yield GaugeMetricFamily(PREFIX + "event_log_position", "Position of the newest event in the event log",
                                value=log.position)
        yield CounterMetricFamily(PREFIX + "event_log_dropped", "Events the event log could not keep up with",
                                  value=log.dropped)
        yield CounterMetricFamily(PREFIX + "events_compacted", "Events compacted away (folded into a snapshot)",
                                  value=log.compacted)
        yield CounterMetricFamily(PREFIX + "event_snapshots", "Snapshots taken of event streams",
                                  value=log.snapshots_taken)
