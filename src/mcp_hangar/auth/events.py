"""The audit events of authentication, authorization, keys, roles, policies and rate limits.

Defining them registers them with the bus's event registry, so the WebSocket stream, the metrics and
the durable event log see them like any other event. No event ever carries a raw key.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any

from ..events import Event, McpServerEvent, event_class


@event_class
class AuthenticationFailed(Event):
    client: str  # the remote address
    surface: str  # rest, mcp, websocket
    reason: str  # missing_key, unknown_key, expired_key, revoked_key, locked_out
    key_id: str | None = None  # known only for an expired or revoked key


@event_class
class AuthorizationDenied(Event):
    principal_id: str
    permission: str
    surface: str
    target: str  # the route (``POST /api/mcp_servers/{server_id}/start``), MCP method or tool
    resource: str | None = None


@event_class
class ApiKeyCreated(Event):
    key_id: str
    principal_id: str
    name: str
    created_by: str | None = None
    expires_at: float | None = None


@event_class
class ApiKeyRevoked(Event):
    key_id: str
    principal_id: str
    revoked_by: str | None = None
    reason: str | None = None


@event_class
class RoleAssigned(Event):
    principal_id: str
    role_name: str
    scope: str
    assigned_by: str | None = None
    source: str = "api"  # api (REST or the MCP tool) or config (the file, at a reload)
    config_path: str | None = None


@event_class
class RoleRevoked(Event):
    principal_id: str
    role_name: str
    scope: str
    revoked_by: str | None = None
    source: str = "api"
    config_path: str | None = None


@event_class
class CustomRoleCreated(Event):
    role_name: str
    permissions: list[str]
    created_by: str | None = None


@event_class
class CustomRoleUpdated(Event):
    role_name: str
    permissions: list[str]
    updated_by: str | None = None


@event_class
class CustomRoleDeleted(Event):
    role_name: str
    deleted_by: str | None = None


@event_class
class ToolAccessPolicySet(Event):
    scope: str
    target_id: str
    allow_list: list[str]
    deny_list: list[str]
    set_by: str | None = None


@event_class
class ToolAccessPolicyCleared(Event):
    scope: str
    target_id: str
    cleared_by: str | None = None


@event_class
class ToolCallRefused(McpServerEvent):
    """A tool call refused before it reached the upstream; ``rule`` says which one refused it."""

    tool_name: str
    principal_id: str | None
    gate: str  # tool_access, permission, rate_limit
    rule: dict[str, Any] = field(default_factory=dict)
    surface: str = "mcp"


@event_class
class RateLimitHit(Event):
    principal_id: str
    bucket: str  # tool_calls, mutations, tool:<name>
    retry_after_s: float


@event_class
class RateLimitLockout(Event):
    client: str
    failures: int
    lockout_seconds: float
