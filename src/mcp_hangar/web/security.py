"""The one permission table: every REST route, the WebSocket stream, ``/mcp``, every MCP method and
every ``hangar_*`` tool, with the permission it needs. With auth on, anything not listed is refused.

``PUBLIC`` entries need no key (probes and metrics). ``AUTHENTICATED`` entries need a valid key and
no particular permission (``/mcp`` itself: each MCP method and tool is then checked below). A
``resource`` names the path parameter or tool argument that a scoped role assignment
(``mcp_server:<id>``, ``group:<id>``) is matched against.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PUBLIC = "public"
AUTHENTICATED = "authenticated"
WEBSOCKET = "WS"  # the method of a WebSocket upgrade in this table


@dataclass(frozen=True)
class Rule:
    method: str
    path: str
    permission: str
    resource: tuple[str, str] | None = None  # (resource kind, path parameter)


def _rules(permission: str, *routes: str, resource: tuple[str, str] | None = None) -> list[Rule]:
    out = []
    for route in routes:
        method, _, path = route.partition(" ")
        out.append(Rule(method, path, permission, resource))
    return out


_SERVER = ("mcp_server", "server_id")
_GROUP = ("group", "group_id")

ROUTES: tuple[Rule, ...] = (
    *_rules(PUBLIC, "GET /health/live", "GET /health/ready", "GET /health/startup", "GET /metrics"),
    # The API's description reveals routes, not data; the docs pages are static.
    *_rules(PUBLIC, "GET /openapi.json", "GET /docs", "GET /docs/oauth2-redirect", "GET /redoc"),
    *_rules(AUTHENTICATED, "GET /mcp", "POST /mcp", "DELETE /mcp"),
    *_rules("events:read", f"{WEBSOCKET} /api/ws/events"),
    *_rules("mcp_servers:read", "GET /api/mcp_servers", "GET /api/system"),
    *_rules("mcp_servers:read", "GET /api/mcp_servers/{server_id}", "GET /api/mcp_servers/{server_id}/health",
            "GET /api/mcp_servers/{server_id}/logs", "GET /api/mcp_servers/{server_id}/tools/history",
            resource=_SERVER),
    *_rules("tools:list", "GET /api/mcp_servers/{server_id}/tools", resource=_SERVER),
    *_rules("mcp_servers:write", "POST /api/mcp_servers"),
    *_rules("mcp_servers:write", "PUT /api/mcp_servers/{server_id}", "DELETE /api/mcp_servers/{server_id}",
            resource=_SERVER),
    *_rules("mcp_servers:lifecycle", "POST /api/mcp_servers/{server_id}/start",
            "POST /api/mcp_servers/{server_id}/stop", resource=_SERVER),
    *_rules("groups:read", "GET /api/groups"),
    *_rules("groups:read", "GET /api/groups/{group_id}", resource=_GROUP),
    *_rules("groups:write", "POST /api/groups"),
    *_rules("groups:write", "PUT /api/groups/{group_id}", "DELETE /api/groups/{group_id}",
            "POST /api/groups/{group_id}/rebalance", "POST /api/groups/{group_id}/members",
            "DELETE /api/groups/{group_id}/members/{member_id}", resource=_GROUP),
    *_rules("discovery:read", "GET /api/discovery/sources", "GET /api/discovery/pending",
            "GET /api/discovery/quarantined"),
    *_rules("discovery:trigger", "POST /api/discovery/sources", "PUT /api/discovery/sources/{source_id}",
            "DELETE /api/discovery/sources/{source_id}", "POST /api/discovery/sources/{source_id}/scan",
            "PUT /api/discovery/sources/{source_id}/enable"),
    *_rules("discovery:approve", "POST /api/discovery/approve/{name}", "POST /api/discovery/reject/{name}"),
    *_rules("config:read", "GET /api/config", "POST /api/config/export", "GET /api/config/diff"),
    *_rules("config:reload", "POST /api/config/reload"),
    *_rules("config:write", "POST /api/config/backup"),
    *_rules("auth:read", "GET /api/auth/keys", "GET /api/auth/roles", "GET /api/auth/roles/all",
            "GET /api/auth/roles/{role_name}", "GET /api/auth/principals", "GET /api/auth/principals/roles",
            "GET /api/auth/permissions", "POST /api/auth/check-permission",
            "GET /api/auth/policies/{scope}/{target_id}"),
    *_rules("auth:write", "POST /api/auth/keys", "DELETE /api/auth/keys/{key_id}", "POST /api/auth/roles",
            "POST /api/auth/roles/assign", "DELETE /api/auth/roles/revoke", "DELETE /api/auth/roles/{role_name}",
            "PATCH /api/auth/roles/{role_name}", "POST /api/auth/policies/{scope}/{target_id}",
            "DELETE /api/auth/policies/{scope}/{target_id}"),
    *_rules(AUTHENTICATED, "GET /api/auth/whoami"),
)

# MCP methods (both protocol eras). Methods not listed are refused with auth on. A tools/call is
# checked per tool: tools:invoke for an upstream tool, MANAGEMENT_TOOLS below for a hangar_* tool.
MCP_METHODS: dict[str, str] = {
    "initialize": AUTHENTICATED, "ping": AUTHENTICATED, "server/discover": AUTHENTICATED,
    "logging/setLevel": AUTHENTICATED, "subscriptions/listen": "tools:list",
    "tools/list": "tools:list", "tools/call": AUTHENTICATED,
    "resources/list": "tools:list", "resources/templates/list": "tools:list", "resources/read": "tools:list",
    "resources/subscribe": "tools:list", "resources/unsubscribe": "tools:list",
    "prompts/list": "tools:list", "prompts/get": "tools:list", "completion/complete": "tools:list",
}


@dataclass(frozen=True)
class ToolRule:
    permission: str
    resource: tuple[str, str] | None = None  # (resource kind, argument name)
    mutation: bool = False  # charged to the principal's REST-mutation bucket too


_ARG_SERVER = ("mcp_server", "mcp_server")
# Every management tool. hangar_call also checks tools:invoke and the tool policy per call inside it.
MANAGEMENT_TOOLS: dict[str, ToolRule] = {
    "hangar_list": ToolRule("mcp_servers:read"),
    "hangar_status": ToolRule("mcp_servers:read"),
    "hangar_health": ToolRule("mcp_servers:read"),
    "hangar_details": ToolRule("mcp_servers:read", _ARG_SERVER),
    "hangar_tools": ToolRule("tools:list", _ARG_SERVER),
    "hangar_start": ToolRule("mcp_servers:lifecycle", _ARG_SERVER, mutation=True),
    "hangar_stop": ToolRule("mcp_servers:lifecycle", _ARG_SERVER, mutation=True),
    "hangar_call": ToolRule("tools:invoke"),
    "hangar_group_list": ToolRule("groups:read"),
    "hangar_group_rebalance": ToolRule("groups:write", ("group", "group"), mutation=True),
    "hangar_reload_config": ToolRule("config:reload", mutation=True),
    "hangar_discover": ToolRule("discovery:trigger", mutation=True),
    "hangar_discovered": ToolRule("discovery:read"),
    "hangar_quarantine": ToolRule("discovery:read"),
    "hangar_approve": ToolRule("discovery:approve", mutation=True),
    "hangar_whoami": ToolRule(AUTHENTICATED),
}

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class RouteTable:
    """``ROUTES`` compiled: (method, path) -> the rule and the path parameters. Literal segments win
    over parameters (``/api/auth/roles/all`` before ``/api/auth/roles/{role_name}``)."""

    def __init__(self, rules: tuple[Rule, ...] = ROUTES) -> None:
        self._exact: dict[tuple[str, str], Rule] = {}
        self._templated: list[tuple[str, re.Pattern[str], Rule]] = []
        for rule in rules:
            if "{" not in rule.path:
                self._exact[(rule.method, rule.path)] = rule
            else:
                regex = "^" + _PARAM.sub(r"(?P<\1>[^/]+)", re.escape(rule.path).replace(r"\{", "{").replace(
                    r"\}", "}")) + "$"
                self._templated.append((rule.method, re.compile(regex), rule))
        self._templated.sort(key=lambda item: item[2].path.count("{"))

    def match(self, method: str, path: str) -> tuple[Rule, dict[str, str]] | None:
        method = "GET" if method == "HEAD" else method
        rule = self._exact.get((method, path))
        if rule is not None:
            return rule, {}
        for rule_method, regex, rule in self._templated:
            if rule_method == method:
                found = regex.match(path)
                if found is not None:
                    return rule, found.groupdict()
        return None

    def resource(self, rule: Rule, params: dict[str, str]) -> str | None:
        if rule.resource is None:
            return None
        kind, param = rule.resource
        value = params.get(param)
        return f"{kind}:{value}" if value else None
