"""The discovery management tools of the MCP front: hangar_discover, hangar_discovered,
hangar_quarantine, hangar_approve. Without a ``discovery:`` block each answers ``DiscoveryNotConfigured``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..errors import DiscoveryNotConfigured, ValidationError

if TYPE_CHECKING:
    from ..hangar import Hangar
    from .manager import DiscoveryManager

JsonObject = dict[str, Any]
Handler = Callable[[JsonObject], Awaitable[JsonObject]]


def _tool(name: str, description: str, properties: JsonObject | None = None, required: list[str] | None = None,
          read_only: bool = True) -> JsonObject:
    schema: JsonObject = {"type": "object", "properties": properties or {}}
    if required:
        schema["required"] = required
    return {"name": name, "description": description, "inputSchema": schema,
            "annotations": {"readOnlyHint": read_only, "openWorldHint": False}}


DISCOVERY_TOOLS: list[JsonObject] = [
    _tool("hangar_discover", "Scan every enabled discovery source now; returns what each one found.",
          read_only=False),
    _tool("hangar_discovered", "Every server discovery has seen: pending, quarantined, approved, rejected."),
    _tool("hangar_quarantine", "Quarantined discovered servers, with the reason of each."),
    _tool("hangar_approve", "Approve a pending discovered server: it joins the fleet (cold).",
          {"mcp_server": {"type": "string", "description": "the discovered server's name"}}, ["mcp_server"],
          read_only=False),
]


def discovery_handlers(hangar: Hangar) -> dict[str, Handler]:
    def manager() -> DiscoveryManager:
        if hangar.discovery is None:
            raise DiscoveryNotConfigured()
        return hangar.discovery

    async def discover(_: JsonObject) -> JsonObject:
        m = manager()
        return {"sources": await m.scan_all("request"), "pending": len(m.pending()),
                "quarantined": len(m.quarantined())}

    async def discovered(_: JsonObject) -> JsonObject:
        return {"discovered": [r.row() for r in manager().all_records()]}

    async def quarantine(_: JsonObject) -> JsonObject:
        return {"quarantined": {r.name: r.row() for r in manager().quarantined()}}

    async def approve(args: JsonObject) -> JsonObject:
        name = args.get("mcp_server")
        if not isinstance(name, str) or not name:
            raise ValidationError("argument 'mcp_server' (a discovered server's name) is required")
        record = await manager().approve(name)
        return {"mcp_server_id": name, "approved": True, "status": record.status, "source_id": record.source_id}

    return {"hangar_discover": discover, "hangar_discovered": discovered, "hangar_quarantine": quarantine,
            "hangar_approve": approve}
