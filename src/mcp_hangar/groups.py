"""A group of MCP servers behind one name: member health, the circuit breaker, and call routing.

A member is in rotation while it is healthy (fewer than ``unhealthy_threshold`` failures in a row, or
back after ``healthy_threshold`` successes) and its server is not dead or degraded. A call picks a
member with the group's strategy; a transport failure is retried on another member when the request
never reached the upstream (refused or failed start) or the tool is idempotent, up to
``retry.max_attempts``. A tool's own error result (``isError``) and a JSON-RPC error from the upstream are
answers, returned as they are.

Group states: ``inactive`` (no member started), ``partial`` (fewer than ``min_healthy`` members ready and
in rotation; calls still accepted), ``healthy``, ``degraded`` (circuit open: calls refused at once).
"""

from __future__ import annotations

import logging
import time
from enum import StrEnum
from typing import Any

from .callers import Caller
from .circuit import CircuitBreaker, CircuitState, Clock
from .errors import (
    GroupCircuitOpenError,
    GroupUnavailableError,
    HangarError,
    McpServerStartError,
    McpServerUnavailableError,
    UpstreamCrashedError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamResponseTooLargeError,
    UpstreamRpcError,
    UpstreamTimeoutError,
)
from .events import (
    EventBus,
    GroupCallRouted,
    GroupCircuitClosed,
    GroupCircuitOpened,
    GroupMemberHealthChanged,
    GroupStateChanged,
)
from .group_config import GroupMemberSpec, GroupSpec
from .models import State
from .strategies import Strategy, make_strategy
from .supervisor import ManagedServer
from .upstream.base import JsonObject

log = logging.getLogger(__name__)

OUT_OF_ROTATION_STATES = frozenset({State.DEAD, State.DEGRADED})
# Failures that never reached the upstream: always safe to try another member.
NOT_REACHED = (McpServerStartError, McpServerUnavailableError)
# Failures after the request may have reached the upstream: retried only for idempotent tools.
MAYBE_REACHED = (UpstreamCrashedError, UpstreamTimeoutError, UpstreamProtocolError)


class GroupState(StrEnum):
    INACTIVE = "inactive"
    PARTIAL = "partial"
    HEALTHY = "healthy"
    DEGRADED = "degraded"


class Member:
    """One server's place in one group, with the group's view of its health."""

    def __init__(self, spec: GroupMemberSpec, server: ManagedServer, seq: int) -> None:
        self.member_id = spec.member_id
        self.weight = spec.weight
        self.priority = spec.priority
        self.seq = seq
        self.server = server
        self.healthy = True  # false after unhealthy_threshold failures, until healthy_threshold successes
        self.consecutive_failures = 0
        self.consecutive_successes = 0
        self.calls = 0
        self.failures = 0
        self.published_in_rotation = self.in_rotation
        self.next_check_at = 0.0  # monotonic; when a member out of rotation is checked again
        self.checking = False

    @property
    def in_flight(self) -> int:
        return self.server.in_flight

    @property
    def in_rotation(self) -> bool:
        return self.healthy and self.server.state not in OUT_OF_ROTATION_STATES

    def spec(self) -> GroupMemberSpec:
        return GroupMemberSpec(member_id=self.member_id, weight=self.weight, priority=self.priority)

    def view(self) -> dict[str, Any]:
        return {
            "member_id": self.member_id,
            "state": self.server.state.value,
            "in_rotation": self.in_rotation,
            "weight": self.weight,
            "priority": self.priority,
            "consecutive_failures": self.consecutive_failures,
            "in_flight": self.server.in_flight,
            "calls": self.calls,
            "failures": self.failures,
        }


class Group:
    """A named pool of servers that is itself a call target."""

    def __init__(self, group_id: str, spec: GroupSpec, servers: dict[str, ManagedServer], *, source: str,
                 bus: EventBus, clock: Clock = time.monotonic) -> None:
        self.group_id = group_id
        self.source = source
        self._bus = bus
        self._clock = clock
        self._seq = 0
        self.members: list[Member] = []
        self._by_id: dict[str, Member] = {}
        self.spec = spec.model_copy(update={"members": []})
        self.strategy: Strategy = make_strategy(spec.strategy)
        self.circuit = CircuitBreaker(spec.circuit_breaker, clock)
        for member in spec.members:
            server = servers.get(member.member_id)
            if server is None:
                log.warning("group %r: member %r is not a server; skipped", group_id, member.member_id)
                continue
            self.add(member, server)
        self.state = self._compute_state()

    # ------------------------------------------------------------------ membership and views

    def add(self, spec: GroupMemberSpec, server: ManagedServer) -> Member:
        self._seq += 1
        member = Member(spec, server, self._seq)
        self.members.append(member)
        self._by_id[member.member_id] = member
        self._sync_spec()
        return member

    def remove(self, member_id: str) -> Member | None:
        member = self._by_id.pop(member_id, None)
        if member is not None:
            self.members.remove(member)
            self._sync_spec()
        return member

    def member(self, member_id: str) -> Member | None:
        return self._by_id.get(member_id)

    def _sync_spec(self) -> None:
        self.spec = self.spec.model_copy(update={"members": [m.spec() for m in self.members]})

    def configure(self, spec: GroupSpec) -> None:
        """Apply new settings (members unchanged)."""
        if spec.strategy != self.spec.strategy:
            self.strategy = make_strategy(spec.strategy)
        self.circuit.settings = spec.circuit_breaker
        self.spec = spec.model_copy(update={"members": [m.spec() for m in self.members]})
        self.refresh("reconfigured")

    @property
    def healthy_count(self) -> int:
        return sum(1 for m in self.members if m.in_rotation and m.server.state == State.READY)

    def tools(self) -> list[JsonObject]:
        """Every tool any member offers, once (the first member listing a name defines it)."""
        seen: dict[str, JsonObject] = {}
        for member in self.members:
            for tool in member.server.tools:
                seen.setdefault(tool["name"], tool)
        return list(seen.values())

    def view(self) -> dict[str, Any]:
        return {
            "group_id": self.group_id,
            "description": self.spec.description,
            "source": self.source,
            "state": self.state.value,
            "strategy": self.spec.strategy,
            "min_healthy": self.spec.min_healthy,
            "auto_start": self.spec.auto_start,
            "healthy_count": self.healthy_count,
            "members_in_rotation_count": sum(1 for m in self.members if m.in_rotation),
            "total_members": len(self.members),
            "circuit_open": self.circuit.state != CircuitState.CLOSED,
            "circuit_state": self.circuit.state.value,
            "health": self.spec.health.model_dump(),
            "circuit_breaker": self.spec.circuit_breaker.model_dump(),
            "retry": self.spec.retry.model_dump(),
            "members": [m.view() for m in self.members],
        }

    # ------------------------------------------------------------------ health and state

    def _compute_state(self) -> GroupState:
        if self.circuit.state != CircuitState.CLOSED:
            return GroupState.DEGRADED
        if all(m.server.state == State.COLD for m in self.members):
            return GroupState.INACTIVE
        return GroupState.HEALTHY if self.healthy_count >= self.spec.min_healthy else GroupState.PARTIAL

    def refresh(self, reason: str) -> None:
        """Publish what changed: members entering or leaving rotation, the group state; and close the
        circuit when enough members came back."""
        rejoined = False
        for member in self.members:
            now_in = member.in_rotation
            if now_in != member.published_in_rotation:
                member.published_in_rotation = now_in
                rejoined = rejoined or now_in
                if not now_in:
                    member.next_check_at = self._clock() + self.spec.health.check_interval_s
                self._bus.publish(GroupMemberHealthChanged(
                    group_id=self.group_id, member_id=member.member_id, in_rotation=now_in, reason=reason,
                    consecutive_failures=member.consecutive_failures))
        if rejoined and self.circuit.state != CircuitState.CLOSED and self.healthy_count >= self.spec.min_healthy:
            self._close_circuit("recovered")
        new = self._compute_state()
        if new != self.state:
            old, self.state = self.state, new
            self._bus.publish(GroupStateChanged(group_id=self.group_id, old_state=old.value, new_state=new.value,
                                                healthy_count=self.healthy_count))

    def member_succeeded(self, member: Member, reason: str = "success") -> None:
        member.consecutive_successes += 1
        if member.healthy and member.consecutive_failures == 0:
            return  # the common case: nothing can change
        member.consecutive_failures = 0
        if not member.healthy and member.consecutive_successes >= self.spec.health.healthy_threshold:
            member.healthy = True
        self.refresh(reason)

    def member_failed(self, member: Member, reason: str) -> None:
        member.consecutive_successes = 0
        member.consecutive_failures += 1
        if member.healthy and member.consecutive_failures >= self.spec.health.unhealthy_threshold:
            member.healthy = False
        self.refresh(reason)

    def member_died(self, member: Member, reason: str) -> None:
        """Its server died (crash or failed start): out of rotation at once, back after a good start."""
        member.consecutive_successes = 0
        member.healthy = False
        self.refresh(reason)

    def _close_circuit(self, reason: str) -> None:
        self.circuit.close()
        self._bus.publish(GroupCircuitClosed(group_id=self.group_id, reason=reason))

    def reset_circuit(self) -> None:
        was_open = self.circuit.state != CircuitState.CLOSED
        self.circuit.close()
        if was_open:
            self._bus.publish(GroupCircuitClosed(group_id=self.group_id, reason="rebalance"))

    def reset_strategy(self) -> None:
        self.strategy = make_strategy(self.spec.strategy)

    # ------------------------------------------------------------------ calls

    async def call_tool(
        self, tool: str, arguments: JsonObject | None, *, meta: JsonObject | None = None,
        principal: str | None = None, caller: Caller | None = None, extra: JsonObject | None = None,
    ) -> JsonObject:
        """Call ``tool`` on one member chosen by the strategy; same contract as ``ManagedServer.call_tool``."""
        admission = self.circuit.admit()
        if admission is None:
            raise GroupCircuitOpenError(
                f"Group '{self.group_id}' circuit is open after {self.circuit.failures} failed calls in a row; "
                f"calls are refused for {self.circuit.retry_in():.1f} s more (then one probe call is let through)")
        probe = admission
        settled = False
        try:
            result = await self._route(tool, arguments, probe, meta=meta, principal=principal, caller=caller,
                                       extra=extra)
        except (UpstreamRpcError, UpstreamResponseTooLargeError):
            settled = True
            self._call_succeeded(probe)  # the pool answered; the answer was an error
            raise
        except UpstreamError:
            settled = True
            self._call_failed(probe)
            raise
        finally:
            if probe and not settled and self.circuit.probing:
                self.circuit.probing = False  # cancelled: let the next call probe
        self._call_succeeded(probe)
        return result

    def _call_succeeded(self, probe: bool) -> None:
        self.circuit.failures = 0
        if probe:
            self.circuit.probing = False
            # The probe's start may already have closed it (the member rejoined the rotation).
            if self.circuit.state != CircuitState.CLOSED and self.healthy_count >= self.spec.min_healthy:
                self._close_circuit("probe_succeeded")
                self.refresh("circuit closed")

    def _call_failed(self, probe: bool) -> None:
        circuit = self.circuit
        circuit.failures += 1
        if probe or (circuit.state == CircuitState.CLOSED and circuit.failures >= circuit.settings.failure_threshold):
            circuit.open()
            self._bus.publish(GroupCircuitOpened(group_id=self.group_id, consecutive_failures=circuit.failures,
                                                 reset_timeout_s=circuit.settings.reset_timeout_s))
            self.refresh("circuit opened")

    def _choose(self, tried: set[str], probe: bool) -> Member | None:
        candidates = [m for m in self.members if m.in_rotation and m.member_id not in tried]
        # A member a reload is restarting is routed around while another can serve (else the call waits).
        candidates = [m for m in candidates if not m.server.held] or candidates
        if not candidates and probe:  # the probe may try a member out of rotation: that is what it is for
            candidates = [m for m in self.members if m.member_id not in tried]
        return self.strategy.pick(candidates) if candidates else None

    async def _route(self, tool: str, arguments: JsonObject | None, probe: bool, **kwargs: Any) -> JsonObject:
        tried: set[str] = set()
        last: UpstreamError | None = None
        for attempt in range(1, self.spec.retry.max_attempts + 1):
            member = self._choose(tried, probe)
            if member is None:
                break
            tried.add(member.member_id)
            member.calls += 1
            try:
                if probe and not member.in_rotation:
                    await member.server.ensure_ready(explicit=True)
                result = await member.server.call_tool(tool, arguments, **kwargs)
            except (UpstreamRpcError, UpstreamResponseTooLargeError):
                self._routed(member, tool, attempt, "error")
                self.member_succeeded(member, "answered")
                raise
            except UpstreamError as exc:
                member.failures += 1
                self._routed(member, tool, attempt, "failure")
                if not isinstance(exc, NOT_REACHED):  # a failed start reports itself (member_died)
                    self.member_failed(member, f"{exc.error_name}: {exc.message}")
                if not self._may_retry(exc, member, tool):
                    raise
                last = exc
                continue
            self._routed(member, tool, attempt, "error" if result.get("isError") else "success")
            self.member_succeeded(member)
            return result
        if last is not None:
            raise last
        raise GroupUnavailableError(f"Group '{self.group_id}' has no member in rotation ({self._why()})")

    def _routed(self, member: Member, tool: str, attempt: int, outcome: str) -> None:
        self._bus.publish(GroupCallRouted(group_id=self.group_id, member_id=member.member_id, tool_name=tool,
                                          attempt=attempt, outcome=outcome))

    def _why(self) -> str:
        if not self.members:
            return "it has no members"
        parts = []
        for m in self.members:
            if m.server.state in OUT_OF_ROTATION_STATES:
                parts.append(f"{m.member_id}: {m.server.state.value}")
            elif not m.healthy:
                parts.append(f"{m.member_id}: out after {m.consecutive_failures} failures")
            else:
                parts.append(f"{m.member_id}: tried")
        return ", ".join(parts)

    @staticmethod
    def _may_retry(exc: HangarError, member: Member, tool: str) -> bool:
        if isinstance(exc, NOT_REACHED):
            return True
        if isinstance(exc, MAYBE_REACHED) and not isinstance(exc, UpstreamResponseTooLargeError):
            return is_idempotent(member.server, tool)
        return False


def is_idempotent(server: ManagedServer, tool: str) -> bool:
    """The tool says running it twice is harmless: ``idempotentHint`` or ``readOnlyHint``."""
    for t in server.tools:
        if t.get("name") == tool:
            annotations = t.get("annotations")
            return isinstance(annotations, dict) and (
                annotations.get("idempotentHint") is True or annotations.get("readOnlyHint") is True)
    return False
