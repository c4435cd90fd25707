"""The aggregate state of one event stream, folded from its events: what a snapshot stores.

``fold(stream_id, state, event)`` applies one stored event (its JSON object) to a state and returns the
state; folding a snapshot's state with the events after it gives the same state as folding the whole
stream, so compaction loses nothing a restart needs. States are plain JSON (numbers, strings, lists,
dicts), so they survive a snapshot's round trip unchanged.

- ``mcp_server:<id>``: its last state, registration, counters of invocations, failures, tool errors,
  starts, stops, crashes, health checks, the last error, the tool count; a deregistration resets it;
- ``mcp_server_group:<id>``: strategy, members, state, circuit, calls routed by outcome;
- ``hangar``: config reloads and their failures.

Every state also counts its events by type (``event_counts``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import orjson

State = dict[str, Any]
Folder = Callable[[State, dict[str, Any]], None]


def initial(stream_id: str) -> State:
    """The state of a stream with no event."""
    kind = stream_id.split(":", 1)[0]
    base: State = {"events": 0, "event_counts": {}, "last_event_at": None}
    if kind == "mcp_server":
        return {**base, **_SERVER_ZERO, "registered": False, "mode": None, "source": None}
    if kind == "mcp_server_group":
        return {**base, **_GROUP_ZERO, "members": [], "routed_outcomes": {}}
    return {**base, "reloads": 0, "reload_failures": 0, "last_reload_at": None, "last_reload_error": None}


_SERVER_ZERO: State = {
    "state": "cold", "dead_reason": None, "total_invocations": 0, "total_failures": 0, "tool_errors": 0,
    "last_success_at": None, "last_failure_at": None, "last_error": None, "starts": 0, "start_failures": 0,
    "stops": 0, "crashes": 0, "health_checks_passed": 0, "health_checks_failed": 0, "tools_count": None,
    "last_pid": None, "protocol_version": None, "last_started_at": None,
}
_GROUP_ZERO: State = {
    "exists": False, "strategy": None, "source": None, "state": None, "members": [], "circuit_open": False,
    "circuit_opened": 0, "calls_routed": 0, "routed_outcomes": {},
}


def _error(e: dict[str, Any], kind: str, message_key: str) -> dict[str, Any]:
    return {"error_type": e.get(kind), "message": e.get(message_key), "tool_name": e.get("tool_name"),
            "at": e.get("occurred_at")}


def _server(s: State, e: dict[str, Any]) -> None:
    t, at = e["event_type"], e.get("occurred_at")
    if t == "ToolInvocationCompleted":
        s["total_invocations"] += 1
        s["tool_errors"] += 1 if e.get("is_error") else 0
        s["last_success_at"] = at
    elif t == "ToolInvocationFailed":
        s["total_invocations"] += 1
        s["total_failures"] += 1
        s["last_failure_at"] = at
        s["last_error"] = _error(e, "error_type", "error_message")
    elif t == "McpServerStateChanged":
        s["state"] = e.get("new_state")
        s["dead_reason"] = e.get("dead_reason") if e.get("new_state") == "dead" else None
    elif t == "McpServerRegistered":
        s.update(registered=True, mode=e.get("mode"), source=e.get("source"))
    elif t == "McpServerDeregistered":
        s.update(_SERVER_ZERO, registered=False, mode=None, source=None)
    elif t == "McpServerStarted":
        s["starts"] += 1
        s.update(tools_count=e.get("tools_count"), last_pid=e.get("pid"),
                 protocol_version=e.get("protocol_version"), last_started_at=at)
    elif t == "McpServerStopped":
        s["stops"] += 1
    elif t == "McpServerStartFailed":
        s["start_failures"] += 1
        s["last_error"] = _error(e, "error_type", "message")
    elif t == "McpServerCrashed":
        s["crashes"] += 1
        s["last_error"] = {"error_type": "McpServerCrashed", "message": e.get("message"), "tool_name": None,
                           "at": at}
    elif t == "McpServerToolsChanged":
        s["tools_count"] = e.get("tools_count")
    elif t == "HealthCheckPassed":
        s["health_checks_passed"] += 1
    elif t == "HealthCheckFailed":
        s["health_checks_failed"] += 1


def _group(s: State, e: dict[str, Any]) -> None:
    t = e["event_type"]
    if t == "GroupCallRouted":
        s["calls_routed"] += 1
        outcome = str(e.get("outcome"))
        s["routed_outcomes"][outcome] = s["routed_outcomes"].get(outcome, 0) + 1
    elif t == "GroupCreated":
        s.update(exists=True, strategy=e.get("strategy"), source=e.get("source"), state=e.get("state"),
                 members=sorted(e.get("members") or []))
    elif t == "GroupDeleted":
        s.update({**_GROUP_ZERO, "members": [], "routed_outcomes": {}})
    elif t == "GroupMemberAdded":
        s["members"] = sorted({*s["members"], e.get("member_id")})
    elif t == "GroupMemberRemoved":
        s["members"] = [m for m in s["members"] if m != e.get("member_id")]
    elif t == "GroupStateChanged":
        s["state"] = e.get("new_state")
    elif t == "GroupCircuitOpened":
        s["circuit_opened"] += 1
        s["circuit_open"] = True
    elif t == "GroupCircuitClosed":
        s["circuit_open"] = False


def _hangar(s: State, e: dict[str, Any]) -> None:
    t = e["event_type"]
    if t == "ConfigurationReloaded":
        s["reloads"] += 1
        s["last_reload_at"] = e.get("occurred_at")
    elif t == "ConfigurationReloadFailed":
        s["reload_failures"] += 1
        s["last_reload_error"] = e.get("message")


_FOLDERS: dict[str, Folder] = {"mcp_server": _server, "mcp_server_group": _group}


def fold(stream_id: str, state: State, event: dict[str, Any]) -> State:
    """Apply one event (a stored event's ``data``) to ``state`` (changed in place) and return it."""
    state["events"] += 1
    counts = state["event_counts"]
    counts[event["event_type"]] = counts.get(event["event_type"], 0) + 1
    state["last_event_at"] = event.get("occurred_at")
    _FOLDERS.get(stream_id.split(":", 1)[0], _hangar)(state, event)
    return state


class Running:
    """A stream's state kept up to date event by event, as ``fold`` of each would: the invocation events
    (nearly the whole of a log) are counted in attributes and applied to ``state`` by ``settle``, the
    rest are folded from their stored JSON (after what was counted, so the order holds)."""

    __slots__ = ("_completed", "_errors", "_last_at", "_requested", "_server", "_success_at", "state", "stream_id",
                 "version")

    def __init__(self, stream_id: str, state: State, version: int) -> None:
        self.stream_id = stream_id
        self.state = state
        self.version = version  # of the last event folded
        self._server = stream_id.startswith("mcp_server:")
        self._requested = self._completed = self._errors = 0
        self._last_at: Any = None
        self._success_at: Any = None

    def add(self, event_type: str, occurred_at: float, is_error: bool, stored: str) -> None:
        """Fold one event: its type, time, ``is_error`` (of an invocation outcome) and stored JSON (parsed
        only for the rarer kinds). The writer keeps these rather than the event, which is freed with its
        call instead of with a whole batch (thousands of objects at once, a pause of the event loop)."""
        if event_type == "ToolInvocationCompleted" and self._server:
            self._completed += 1
            if is_error:
                self._errors += 1
            self._last_at = self._success_at = occurred_at
        elif event_type == "ToolInvocationRequested" and self._server:
            self._requested += 1
            self._last_at = occurred_at
        else:
            self.settle()
            fold(self.stream_id, self.state, orjson.loads(stored))

    def settle(self) -> State:
        """Apply what was counted to ``state`` and return it."""
        requested, completed = self._requested, self._completed
        if requested or completed:
            s = self.state
            s["events"] += requested + completed
            counts = s["event_counts"]
            if requested:
                counts["ToolInvocationRequested"] = counts.get("ToolInvocationRequested", 0) + requested
            if completed:
                counts["ToolInvocationCompleted"] = counts.get("ToolInvocationCompleted", 0) + completed
                s["total_invocations"] += completed
                s["tool_errors"] += self._errors
                s["last_success_at"] = self._success_at
            s["last_event_at"] = self._last_at
            self._requested = self._completed = self._errors = 0
        return self.state


def fold_all(stream_id: str, events: Iterable[dict[str, Any]], state: State | None = None) -> State:
    """``state`` (default: the empty state) with every event of ``events`` applied in order."""
    out = initial(stream_id) if state is None else state
    for event in events:
        fold(stream_id, out, event)
    return out
