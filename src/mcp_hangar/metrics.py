"""Prometheus metrics, fed by an event-bus listener. Each Hangar has its own registry.

Labels stay bounded: server ids, tool names, states, route templates and status codes; never call
ids or principals.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest

from . import __version__
from .events import (
    Event,
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
from .models import State

if TYPE_CHECKING:
    from .hangar import Hangar

PREFIX = "mcp_hangar_"
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
START_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)


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
        self.tool_calls = Counter(PREFIX + "tool_calls", "Tool calls by outcome",
                                  ["mcp_server", "tool", "outcome"], registry=r)
        self.tool_errors = Counter(PREFIX + "tool_call_errors", "Failed tool calls by error type",
                                   ["mcp_server", "tool", "error_type"], registry=r)
        self.tool_duration = Histogram(PREFIX + "tool_call_duration_seconds", "Tool call duration",
                                       ["mcp_server", "tool"], buckets=LATENCY_BUCKETS, registry=r)
        self.http_requests = Counter(PREFIX + "http_requests", "HTTP requests by route template and status",
                                     ["method", "route", "status"], registry=r)
        self.http_duration = Histogram(PREFIX + "http_request_duration_seconds", "HTTP request duration",
                                       ["method", "route"], buckets=LATENCY_BUCKETS, registry=r)
        for server in hangar.servers.values():
            self._set_state(server.server_id, server.state.value)
        hangar.bus.add_listener(self.on_event)

    def _set_state(self, server_id: str, state: str) -> None:
        for s in State:
            self.server_state.labels(server_id, s.value).set(1 if s.value == state else 0)
        self.server_up.labels(server_id).set(1 if state == State.READY.value else 0)

    def on_event(self, event: Event) -> None:
        if isinstance(event, ToolInvocationCompleted):
            outcome = "error" if event.is_error else "success"
            self.tool_calls.labels(event.mcp_server_id, event.tool_name, outcome).inc()
            self.tool_duration.labels(event.mcp_server_id, event.tool_name).observe(event.duration_ms / 1000)
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
