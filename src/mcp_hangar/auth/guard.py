"""What the MCP front asks before it lists or calls a tool: permissions, tool policies, rate limits.

``Guard.active`` is false when auth is off and no policy exists: then the front skips every check.
The filtered ``tools/list`` is cached per principal and invalidated by any change of the catalogue,
the policies or the principal's roles, so a warm list is a dictionary hit; a call is checked with
memoised permission lookups and the policy engine's cached decision.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import AccessDeniedError, HangarError, RateLimitExceeded, ToolAccessDeniedError
from ..web.security import AUTHENTICATED, MANAGEMENT_TOOLS, MCP_METHODS
from .events import ToolCallRefused
from .permissions import Principal

if TYPE_CHECKING:
    from ..front.catalog import Catalog
    from .service import AuthService

JsonObject = dict[str, Any]
MANAGEMENT = "hangar"
PRINCIPAL_SCOPE_KEY = "hangar.principal"  # where the HTTP edge leaves the authenticated principal


class Guard:
    """The front's view of the auth service (one per ``Front``)."""

    def __init__(self, auth: AuthService, catalog: Catalog) -> None:
        self.auth = auth
        self.catalog = catalog
        self.enforcing = auth.enabled  # principals and permissions; policies apply either way
        self._lists: dict[str, tuple[tuple[Any, ...], list[JsonObject]]] = {}

    @property
    def active(self) -> bool:
        return self.enforcing or not self.auth.policies.empty

    # ------------------------------------------------------------------ methods

    def check_method(self, principal: Principal | None, method: str) -> None:
        """Whether ``principal`` may use this MCP method at all (auth on only)."""
        if principal is None:
            raise AccessDeniedError("no principal for this MCP session")
        needed = MCP_METHODS.get(method)
        if needed is None:
            self.auth.refuse_undeclared(principal, "mcp", method)
        elif needed != AUTHENTICATED:
            self.auth.authorize(principal, needed, None, "mcp", method)

    # ------------------------------------------------------------------ tools/list

    def visible(self, principal: Principal | None, tools: list[JsonObject]) -> list[JsonObject]:
        """The tools this principal may see: its permissions, then the tool policies."""
        key = principal.principal_id if principal is not None else ""
        stamp = (self.catalog.fingerprint, self.auth.policies.version, self.auth.version, len(tools))
        cached = self._lists.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        out = [t for t in tools if self._may_list(principal, str(t.get("name")))]
        self._lists[key] = (stamp, out)
        return out

    def _may_list(self, principal: Principal | None, name: str) -> bool:
        route = self.catalog.route(name)
        if route is None:
            return False
        if route.server_id == MANAGEMENT:
            rule = MANAGEMENT_TOOLS.get(route.tool)
            if rule is None:
                return principal is None  # undeclared: hidden (and refused) with auth on
            return principal is None or rule.permission == AUTHENTICATED or principal.allows(rule.permission)
        if self.auth.policies.judge(route.server_id, route.tool) is not None:
            return False
        return principal is None or principal.allows("tools:list", self.auth.resource_of(route.server_id))

    # ------------------------------------------------------------------ tools/call

    def check_call(self, principal: Principal | None, name: str, server_id: str, tool: str,
                   arguments: JsonObject) -> None:
        """Raise the refusal for a ``tools/call`` (and publish ``ToolCallRefused``), or return."""
        if server_id == MANAGEMENT:
            self._check_management(principal, tool, arguments)
            return
        self.check_target(principal, server_id, tool, name)

    def _check_management(self, principal: Principal | None, tool: str, arguments: JsonObject) -> None:
        if principal is None:
            return
        rule = MANAGEMENT_TOOLS.get(tool)
        if rule is None:
            self.auth.refuse_undeclared(principal, "mcp", tool)
        assert rule is not None
        if rule.permission != AUTHENTICATED:
            resource = None
            if rule.resource is not None:
                value = arguments.get(rule.resource[1])
                resource = f"{rule.resource[0]}:{value}" if isinstance(value, str) else None
            try:
                self.auth.authorize(principal, rule.permission, resource, "mcp", tool)
            except AccessDeniedError:
                self._refused(principal, MANAGEMENT, tool, "permission", {"permission": rule.permission})
                raise
        if rule.mutation:
            self.auth.charge_mutation(principal)

    def check_target(self, principal: Principal | None, server_id: str, tool: str, name: str | None = None) -> None:
        """The checks of one upstream call (also each call inside ``hangar_call``)."""
        refusal = self.auth.policies.judge(server_id, tool)
        if refusal is not None:
            self._refused(principal, server_id, tool, "tool_access", refusal.rule())
            raise ToolAccessDeniedError(f"tool '{tool}' of '{server_id}' is {refusal.describe()}", refusal.rule())
        if principal is None:
            return
        resource = self.auth.resource_of(server_id)
        try:
            self.auth.authorize(principal, "tools:invoke", resource, "mcp", name or f"{server_id}/{tool}")
        except AccessDeniedError:
            self._refused(principal, server_id, tool, "permission", {"permission": "tools:invoke"})
            raise
        if name is None and self.auth.limiter.per_tool:  # a call inside hangar_call: per-tool buckets too,
            name = self.catalog.name_for(server_id, tool)  # on the name a tools/call would use
        limited = self.auth.limiter.take_tool_call(principal.principal_id, name or "")
        if limited is not None:
            bucket, wait = limited
            self._refused(principal, server_id, tool, "rate_limit", {"bucket": bucket})
            self.auth.rate_limited(principal.principal_id, bucket, wait)

    def _refused(self, principal: Principal | None, server_id: str, tool: str, gate: str,
                 rule: dict[str, Any]) -> None:
        self.auth.bus.publish(ToolCallRefused(
            mcp_server_id=server_id, tool_name=tool, gate=gate, rule=rule,
            principal_id=principal.principal_id if principal is not None else None))

    # ------------------------------------------------------------------ hangar_whoami

    def whoami(self, principal: Principal | None) -> JsonObject:
        if principal is None:
            return {"authenticated": False, "principal": None, "auth_enabled": self.enforcing}
        return {"authenticated": True, "auth_enabled": True,
                "principal": {"id": principal.principal_id, "roles": self.auth.role_views(principal.principal_id)},
                "permissions": sorted(principal.everywhere)}  # as GET /api/auth/whoami


def as_error_data(exc: HangarError) -> JsonObject:
    """The JSON-RPC ``error.data`` of a refusal."""
    data: JsonObject = {"error_type": exc.error_name}
    if isinstance(exc, ToolAccessDeniedError):
        data["rule"] = exc.rule
    if isinstance(exc, RateLimitExceeded):
        data["retry_after_s"] = round(exc.retry_after_s, 3)
    return data
