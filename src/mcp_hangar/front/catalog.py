"""The aggregated tool catalogue every MCP front session sees.

It is rebuilt only when the fleet or a server's tools change (the event bus tells it), so listing is a
copy of a prepared list and routing a call is one dictionary lookup.

A group's tools are listed once, as ``<group_id><sep><tool>``; the tools of its members are not listed
(they stay callable by their own names, and through ``hangar_call``).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from ..events import (
    Event,
    GroupCreated,
    GroupDeleted,
    GroupMemberAdded,
    GroupMemberRemoved,
    McpServerDeregistered,
    McpServerRegistered,
    McpServerStarted,
    McpServerToolsChanged,
    McpServerUpdated,
)
from .naming import disambiguate, exposed_name

if TYPE_CHECKING:
    from ..hangar import Hangar

log = logging.getLogger(__name__)

JsonObject = dict[str, Any]
MANAGEMENT = "hangar"  # the pseudo server id of the management tools
# Events that may change the exposed tools (the bus calls the catalogue for these only).
_CATALOG_EVENTS = (McpServerRegistered, McpServerDeregistered, McpServerToolsChanged, McpServerStarted,
                   McpServerUpdated, GroupCreated, GroupDeleted, GroupMemberAdded, GroupMemberRemoved)


@dataclass(frozen=True, slots=True)
class ToolRoute:
    server_id: str  # a server or group id; MANAGEMENT for hangar_* tools
    tool: str


class Catalog:
    """Exposed names -> routes, and the list clients receive."""

    def __init__(self, hangar: Hangar, management_tools: list[JsonObject]) -> None:
        self._hangar = hangar
        self._management = management_tools
        self._dirty = True
        self._tools: list[JsonObject] = []
        self._routes: dict[str, ToolRoute] = {}
        self._reverse: dict[tuple[str, str], str] = {}
        self._by_name: dict[str, JsonObject] = {}
        self.fingerprint = ""
        self._listeners: list[Callable[[], None]] = []
        hangar.bus.add_listener(self._on_event, _CATALOG_EVENTS)

    def close(self) -> None:
        self._hangar.bus.remove_listener(self._on_event)

    def on_change(self, callback: Callable[[], None]) -> None:
        """``callback()`` runs after the exposed tool list has actually changed."""
        self._listeners.append(callback)

    def _on_event(self, event: Event) -> None:
        if isinstance(event, _CATALOG_EVENTS):
            self._dirty = True
            before = self.fingerprint
            self._rebuild()
            if self.fingerprint != before:
                for callback in list(self._listeners):
                    callback()

    def _rebuild(self) -> None:
        settings = self._hangar.loaded.config.front
        tools: list[JsonObject] = []
        routes: dict[str, ToolRoute] = {}
        reverse: dict[tuple[str, str], str] = {}
        if settings.expose_management_tools:
            for tool in self._management:
                tools.append(tool)
                routes[tool["name"]] = ToolRoute(MANAGEMENT, tool["name"])
        if settings.expose_upstream_tools:
            grouped = self._hangar.groups.member_ids()
            for server in self._hangar.list_servers():
                for tool in server.tools:
                    original = tool["name"]
                    name = exposed_name(server.server_id, original, settings.tool_separator,
                                        namespace=server.spec.namespace)
                    if name in routes:
                        name = disambiguate(name, server.server_id, original)
                    routes[name] = ToolRoute(server.server_id, original)
                    reverse[(server.server_id, original)] = name
                    if server.server_id not in grouped:
                        tools.append({**tool, "name": name})
            for group in self._hangar.groups.all():
                for tool in group.tools():
                    original = tool["name"]
                    name = exposed_name(group.group_id, original, settings.tool_separator)
                    if name in routes:
                        name = disambiguate(name, group.group_id, original)
                    routes[name] = ToolRoute(group.group_id, original)
                    reverse[(group.group_id, original)] = name
                    tools.append({**tool, "name": name})
        self._tools, self._routes, self._reverse = tools, routes, reverse
        self._by_name = {t["name"]: t for t in tools}
        self.fingerprint = hashlib.sha256(orjson.dumps(tools, option=orjson.OPT_SORT_KEYS)).hexdigest()
        self._dirty = False

    def tools(self) -> list[JsonObject]:
        if self._dirty:
            self._rebuild()
        return self._tools

    def tool(self, name: str) -> JsonObject | None:
        """The exposed tool called ``name``, as clients see it."""
        if self._dirty:
            self._rebuild()
        return self._by_name.get(name)

    def route(self, name: str) -> ToolRoute | None:
        if self._dirty:
            self._rebuild()
        route = self._routes.get(name)
        if route is None:
            route = self._guess(name)
        return route

    def _guess(self, name: str) -> ToolRoute | None:
        """Route ``<server><sep><tool>`` to a server whose tools are not known yet (it starts lazily),
        or ``<group><sep><tool>`` to a group none of whose members' tools are known yet."""
        sep = self._hangar.loaded.config.front.tool_separator
        server_id, found, tool = name.partition(sep)
        while found:
            server = self._hangar.servers.get(server_id)
            if server is not None and server.tools_origin == "unknown" and tool:
                return ToolRoute(server_id, tool)
            group = self._hangar.groups.groups.get(server_id)
            if group is not None and tool and all(m.server.tools_origin == "unknown" for m in group.members):
                return ToolRoute(server_id, tool)
            head, found, tool = tool.partition(sep)
            server_id = f"{server_id}{sep}{head}"
        return None

    def name_of(self, server_id: str, tool: str) -> str | None:
        if self._dirty:
            self._rebuild()
        return self._reverse.get((server_id, tool))

    def name_for(self, server_id: str, tool: str) -> str:
        """The exposed name of ``tool`` on ``server_id``: the catalogue's, or, while the target's tools are
        not known yet, the name it will have (what a client calling it by name sends)."""
        known = self.name_of(server_id, tool)
        if known is not None:
            return known
        server = self._hangar.servers.get(server_id)
        return exposed_name(server_id, tool, self._hangar.loaded.config.front.tool_separator,
                            namespace=server.spec.namespace if server is not None else None)

    def unknown_servers(self) -> list[str]:
        """Servers whose tools Hangar has never seen (never started, nothing declared)."""
        return [s.server_id for s in self._hangar.list_servers() if s.tools_origin == "unknown"]
