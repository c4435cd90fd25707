"""Permissions (``resource:action``), the built-in roles, and the resolved form of a principal.

A principal's grants are resolved once (when its roles or assignments change) into a ``Principal``
object whose ``allows`` is a set lookup, memoised per (permission, resource): the call path never
walks roles.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

# Every permission, by resource type. ``*:*`` grants everything, ``<resource>:*`` a whole resource.
PERMISSIONS: dict[str, tuple[str, ...]] = {
    "mcp_servers": ("read", "write", "lifecycle"),
    "tools": ("list", "invoke"),
    "groups": ("read", "write"),
    "discovery": ("read", "approve", "trigger"),
    "config": ("read", "reload", "write"),
    "auth": ("read", "write"),
    "metrics": ("read",),
    "events": ("read",),
}
ALL = "*:*"
KNOWN = frozenset(f"{r}:{a}" for r, actions in PERMISSIONS.items() for a in actions)


def check_permission(value: str) -> str:
    """``value`` if it is a known permission or wildcard, else ``ValueError``."""
    if value == ALL or value in KNOWN:
        return value
    resource, _, action = value.partition(":")
    if action == "*" and resource in PERMISSIONS:
        return value
    raise ValueError(f"unknown permission {value!r}; see GET /api/auth/permissions")


@dataclass(frozen=True)
class Role:
    name: str
    description: str
    permissions: frozenset[str]
    builtin: bool = False

    def view(self) -> dict[str, object]:
        return {"name": self.name, "description": self.description, "builtin": self.builtin,
                "permissions": sorted(self.permissions), "permissions_count": len(self.permissions)}


def _role(name: str, description: str, *permissions: str) -> Role:
    return Role(name, description, frozenset(permissions), builtin=True)


_READ = ("mcp_servers:read", "groups:read", "discovery:read")
BUILTIN_ROLES: dict[str, Role] = {r.name: r for r in (
    _role("admin", "Everything, including keys, roles and policies.", ALL),
    _role("operator", "Runs the fleet: servers, groups, discovery, config reload, tools, events; no auth admin.",
          *_READ, "mcp_servers:write", "mcp_servers:lifecycle", "groups:write", "discovery:approve",
          "discovery:trigger", "config:read", "config:reload", "tools:list", "tools:invoke", "metrics:read",
          "events:read"),
    _role("developer", "Uses and runs servers: read, create, start and stop servers, list and call tools.",
          *_READ, "mcp_servers:write", "mcp_servers:lifecycle", "tools:list", "tools:invoke", "metrics:read",
          "events:read"),
    _role("viewer", "Read-only: servers, groups, discovery, tool lists, metrics. Cannot start, call or change.",
          *_READ, "tools:list", "metrics:read"),
    _role("auditor", "Reads the audit trail: events, keys and roles (never the keys themselves), config, metrics.",
          *_READ, "events:read", "auth:read", "config:read", "metrics:read"),
    _role("service-account", "For programs: list and call tools, read servers.",
          "mcp_servers:read", "tools:list", "tools:invoke"),
)}


def grants(held: Iterable[str], needed: str) -> bool:
    """Whether a set of held permissions (wildcards included) covers ``needed``."""
    held = set(held)
    if ALL in held or needed in held:
        return True
    return f"{needed.partition(':')[0]}:*" in held


@dataclass
class Principal:
    """What one principal may do: permissions held everywhere, and per resource (``group:pool``)."""

    principal_id: str
    roles: list[tuple[str, str]]  # (role name, scope)
    everywhere: frozenset[str]
    scoped: Mapping[str, frozenset[str]]  # resource -> permissions
    granted_by: Mapping[tuple[str, str], frozenset[str]] = field(default_factory=dict)  # (role, scope)
    _memo: dict[tuple[str, str | None], bool] = field(default_factory=dict, repr=False)

    def allows(self, permission: str, resource: str | None = None) -> bool:
        """Whether this principal holds ``permission`` globally, or on ``resource`` (``mcp_server:x``)."""
        key = (permission, resource)
        found = self._memo.get(key)
        if found is None:
            found = grants(self.everywhere, permission) or (
                resource is not None and resource in self.scoped and grants(self.scoped[resource], permission))
            if len(self._memo) > 10_000:  # resources come from request paths: keep the memo bounded
                self._memo.clear()
            self._memo[key] = found
        return found

    def role_granting(self, permission: str, resource: str | None = None) -> str | None:
        """The first role that grants ``permission`` (for check-permission answers)."""
        for (name, scope) in self.roles:
            if scope != "global" and scope != resource:
                continue
            perms = self.granted_by.get((name, scope))
            if perms is not None and grants(perms, permission):
                return name
        return None


def resolve(principal_id: str, assignments: Iterable[tuple[str, str]], roles: Mapping[str, Role]) -> Principal:
    """Fold a principal's (role, scope) assignments into its ``Principal``; unknown roles grant nothing."""
    everywhere: set[str] = set()
    scoped: dict[str, set[str]] = {}
    held: list[tuple[str, str]] = []
    by_role: dict[tuple[str, str], frozenset[str]] = {}
    for name, scope in assignments:
        held.append((name, scope))
        role = roles.get(name)
        if role is None:
            continue
        by_role[(name, scope)] = role.permissions
        if scope == "global":
            everywhere |= role.permissions
        else:
            scoped.setdefault(scope, set()).update(role.permissions)
    return Principal(principal_id, held, frozenset(everywhere), {k: frozenset(v) for k, v in scoped.items()}, by_role)
